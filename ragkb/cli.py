"""The `ragkb` command: thin wrappers that turn library results into output and exit codes.

Exit codes: 0 success, 1 some files failed / answer flagged, 2 usage or configuration error,
75 (EX_TEMPFAIL) another ingest holds the lock, so a scheduler can simply retry later.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ragkb.config import Settings
from ragkb.eval_cli import eval_app
from ragkb.ingest import FINAL_OUTCOMES, IngestLocked, Ingestor, IngestReport
from ragkb.models import ModelUnavailable
from ragkb.store import StoreError

EXIT_LOCKED = 75

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Private retrieval-augmented knowledge base.")
err = Console(stderr=True)
out = Console()


def _settings(collection: str | None = None) -> Settings:
    try:
        settings = Settings()
    except Exception as exc:  # pydantic validation of ragkb.toml / RAGKB_* values
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if collection:
        settings = settings.model_copy(update={"collection": collection})
    return settings


def _quiet_libraries(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("unstructured", "pdfminer", "pypdf", "unstructured_inference", "httpx", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


@app.command()
def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders; default: the sources in ragkb.toml")] = None,
    collection: Annotated[Optional[str], typer.Option(help="Qdrant collection")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary, no progress")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Parser processes (default RAGKB_PARSE_WORKERS)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Add, update and remove documents so the base matches the given folders."""
    _quiet_libraries(verbose)
    settings = _settings(collection)
    if workers is not None:
        settings = settings.model_copy(update={"parse_workers": workers})
    roots = list(paths or [source.path for source in settings.sources])
    if not roots:
        raise _fail("nothing to ingest: give PATH arguments or [[sources]] in ragkb.toml")
    ingestor = Ingestor(settings)
    try:
        if json_out or not err.is_terminal:
            report = ingestor.run(roots)
        else:
            report = _run_with_progress(ingestor, roots)
    except IngestLocked as exc:
        raise _fail(str(exc), EXIT_LOCKED) from exc
    except (StoreError, ModelUnavailable) as exc:
        raise _fail(str(exc)) from exc
    finally:
        ingestor.close()
    if json_out:
        print(json.dumps(report.to_dict()))
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


def _run_with_progress(ingestor: Ingestor, roots: list[Path]) -> IngestReport:
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}", style="dim"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("scanning", total=None)

        def on_total(count: int) -> None:
            progress.update(task, total=count, description="")

        def on_file(path: str, event: str) -> None:
            if event == "unchanged":
                return
            advance = 1 if event in FINAL_OUTCOMES else 0
            progress.update(task, advance=advance, description=f"{event}: {Path(path).name}")

        return ingestor.run(roots, progress=on_file, total=on_total)


def _print_report(report: IngestReport) -> None:
    out.print(
        f"[bold]{report.collection}[/bold]: added {report.added}, updated {report.updated}, "
        f"unchanged {report.unchanged}, deleted {report.deleted}, skipped (unsupported type) {report.skipped}, "
        f"failed {len(report.failed)}; {report.chunks} chunks embedded in {report.seconds:.1f}s"
        + (f" ({report.chunks / report.seconds:.1f} chunks/s)" if report.chunks and report.seconds else "")
    )
    if report.added + report.updated + report.deleted == 0 and not report.chunks:
        out.print("nothing changed: no document was embedded")
    if report.failed:
        table = Table("failed file", "reason", title="Failures", title_justify="left")
        for failure in report.failed:
            table.add_row(failure.path, failure.error)
        out.print(table)


@app.command()
def forget(
    path: Path,
    collection: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Remove a file, or every file under a folder, from the knowledge base."""
    _quiet_libraries(False)
    ingestor = Ingestor(_settings(collection))
    try:
        removed = ingestor.forget(path)
    except IngestLocked as exc:
        raise _fail(str(exc), EXIT_LOCKED) from exc
    finally:
        ingestor.close()
    if not removed:
        raise _fail(f"{path} is not in the knowledge base", 1)
    out.print(f"forgot {removed} file(s)")


@app.command()
def status(
    collection: Annotated[Optional[str], typer.Option()] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What is indexed, the last run, failures, and which models and backends are active."""
    _quiet_libraries(False)
    from ragkb.status import collect_status

    try:
        info = collect_status(_settings(collection))
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps(info, default=str))
        return
    _print_status(info)


def _print_status(info: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if key == "failed":
            continue
        if key == "last_run" and value:
            value = _describe_run(value)
        table.add_row(f"[bold]{key}[/bold]", json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value))
    out.print(table)
    if info.get("failed"):
        failures = Table("failed file", "reason", title="Failed files", title_justify="left")
        for failure in info["failed"]:
            failures.add_row(failure["path"], failure["error"])
        out.print(failures)


def _groups(settings: Settings, user: str | None) -> list[str] | None:
    """No users configured and no --user: single-user mode, every document is visible."""
    from ragkb.access import AccessError, get_user, users_configured

    if user is None:
        if users_configured(settings):
            raise _fail("users are configured (RAGKB_USERS_FILE): pass --user NAME")
        return None
    if not users_configured(settings):
        raise _fail("--user needs a users file: set RAGKB_USERS_FILE and add users with `ragkb users add`")
    try:
        return list(get_user(settings, user).groups)
    except AccessError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def ask(
    question: str,
    user: Annotated[Optional[str], typer.Option(help="Answer as this user (their groups filter the documents)")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Passages given to the model")] = None,
    file_type: Annotated[Optional[list[str]], typer.Option("--type", help="Only these document types (pdf, docx, ...)")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="Only documents under this folder")] = None,
    collection: Annotated[Optional[str], typer.Option()] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of streaming")] = False,
) -> None:
    """Answer a question from the documents, citing file, page and passage."""
    _quiet_libraries(False)
    from ragkb.access import audit_answer
    from ragkb.answer import Answerer
    from ragkb.llm import LLMError
    from ragkb.retrieve import Filters

    settings = _settings(collection)
    groups = _groups(settings, user)
    filters = Filters(tuple(file_type or ()), str(folder) if folder else None)
    answerer = Answerer(settings)
    stream_tokens = not json_out and out.is_terminal
    result = None
    try:
        for event in answerer.stream(question, groups=groups, top_k=top_k, filters=filters):
            if event.kind == "token" and stream_tokens:
                out.file.write(event.text)
                out.file.flush()
            elif event.result is not None:
                result = event.result
    except (StoreError, ModelUnavailable, LLMError) as exc:
        raise _fail(str(exc)) from exc
    assert result is not None
    audit_answer(settings, result, user=user, channel="cli")
    if json_out:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_answer(result, streamed=stream_tokens and result.backend != "none")
    raise typer.Exit(1 if result.flagged else 0)


def _print_answer(result: Any, streamed: bool) -> None:
    if streamed:
        out.print()
        out.print(f"[dim]checked answer:[/dim] {result.answer}" if result.warnings else "")
    else:
        out.print(result.answer, markup=False, highlight=False)
    shown = result.citations or result.passages
    if shown:
        out.print("\n[bold]Sources[/bold]" + ("" if result.citations else " (retrieved, not cited)"))
    for c in shown:
        where = ", ".join(x for x in [f"page {c.page}" if c.page is not None else "", f"section: {c.section}" if c.section else ""] if x)
        out.print(f"[bold][{c.n}][/bold] {c.source}" + (f" ({where})" if where else ""), markup=True, highlight=False)
        quote = " ".join(c.text.split())
        out.print(f"    [dim]\"{quote[:240]}{'…' if len(quote) > 240 else ''}\"[/dim]", highlight=False)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
    err.print(f"[dim]backend: {result.backend}; {timings}[/dim]")


users_app = typer.Typer(help="Manage UI/CLI users and their groups.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the audit log.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(eval_app, name="eval")



@users_app.command("add")
def users_add(
    name: str,
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group membership (repeat)")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create or replace a user in the users file (argon2-hashed password)."""
    from ragkb.access import AccessError, add_user

    try:
        user = add_user(_settings(), name, password, group)
    except AccessError as exc:
        raise _fail(str(exc)) from exc
    out.print(f"user {user.name} in groups {', '.join(user.groups)}")


@users_app.command("list")
def users_list() -> None:
    from ragkb.access import load_users

    for user in load_users(_settings()).values():
        out.print(f"{user.name}: {', '.join(user.groups)}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain of the audit log; exit 1 if any record was changed or removed."""
    from ragkb.access import verify_audit

    check = verify_audit(_settings())
    if check.ok:
        out.print(f"audit log intact: {check.records} records")
        return
    raise _fail(f"audit log tampered: {check.problem} ({check.records} records verified before it)", 1)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 only behind a proxy or in compose")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8501,
) -> None:
    """Start the Streamlit chat UI."""
    import subprocess

    app_path = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    if not app_path.is_file():
        raise _fail(f"UI not found at {app_path}: run from a source checkout (pip install -e .)")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
    ]
    raise typer.Exit(subprocess.call(command))


def _describe_run(run: dict[str, Any]) -> str:
    import datetime

    started = datetime.datetime.fromtimestamp(float(run["started_at"])).strftime("%Y-%m-%d %H:%M:%S")
    summary = run.get("summary")
    if not summary:
        return f"started {started}, did not finish (killed or still running)"
    return (
        f"{started}: added {summary['added']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
        f"deleted {summary['deleted']}, failed {len(summary['failed'])}, {summary['chunks']} chunks in {summary['seconds']:.1f}s"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
