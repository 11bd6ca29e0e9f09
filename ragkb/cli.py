"""The `ragkb` command: thin wrappers that turn library results into output and exit codes.

Exit codes (`ragkb.errors`): 0 success, 1 some files failed / answer flagged / not found,
2 usage or configuration error, 75 (EX_TEMPFAIL) the base is busy (another ingest holds the
lock, or another process holds the embedded store), so a scheduler can simply retry later.
Every `RagkbError` is turned into one line on stderr and its exit code in `console.handled`.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ragkb.config import Settings
from ragkb import operations
from ragkb.chat_cli import chat
from ragkb.console import err, handled, out, print_answer, print_report, print_status, run_with_progress
from ragkb.errors import EXIT_PARTIAL, ConfigError, NotFound
from ragkb.ingest import IngestReport, ProgressCallback

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Private retrieval-augmented knowledge base.")


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValueError as exc:  # invalid TOML, or pydantic's validation of ragkb.toml / RAGKB_* values
        raise ConfigError(f"configuration error: {exc}") from exc
    if Path("ragkb.toml").is_file():
        from ragkb.config import config_path

        if config_path() != Path("ragkb.toml").resolve():
            err.print("[yellow]warning:[/yellow] ./ragkb.toml is not read: set RAGKB_CONFIG=ragkb.toml to use it")
    return settings


def _quiet_libraries(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("unstructured", "pdfminer", "pypdf", "unstructured_inference", "httpx", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore")


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
    with handled():
        settings = _settings()
        if workers is not None:
            settings = settings.model_copy(update={"parse_workers": workers})
        roots = list(paths or [source.path for source in settings.sources])
        if not roots:
            raise ConfigError("nothing to ingest: give PATH arguments or [[sources]] in ragkb.toml")

        def run(progress: ProgressCallback | None = None, total: Callable[[int], None] | None = None) -> IngestReport:
            return operations.ingest(settings, roots, collection, progress, total)

        report = run() if json_out or not err.is_terminal else run_with_progress(run)
    if json_out:
        print(json.dumps(report.to_dict()))
    else:
        print_report(report)
    raise typer.Exit(report.exit_code)


@app.command()
def forget(path: Path, collection: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Remove a file, or every file under a folder, from the knowledge base."""
    _quiet_libraries(False)
    with handled():
        removed = operations.forget(_settings(), path, collection)
        if not removed:
            raise NotFound(f"{path} is not in the knowledge base")
    out.print(f"forgot {removed} file(s)")


@app.command()
def status(
    collection: Annotated[Optional[str], typer.Option()] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What is indexed, the last run, failures and skipped files, and which models and backends are active."""
    _quiet_libraries(False)
    with handled():
        info = operations.status(_settings(), collection)
    if json_out:
        print(json.dumps(info, default=str))
    else:
        print_status(info)


def groups_of(settings: Settings, user: str | None) -> list[str] | None:
    """No users configured and no --user: single-user mode, every document is visible."""
    from ragkb.users import get_user, users_configured

    if user is None:
        if users_configured(settings):
            raise ConfigError("users are configured (RAGKB_USERS_FILE): pass --user NAME")
        return None
    if not users_configured(settings):
        raise ConfigError("--user needs a users file: set RAGKB_USERS_FILE and add users with `ragkb users add`")
    return list(get_user(settings, user).groups)


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
    stream_tokens = not json_out and out.is_terminal

    def on_token(text: str) -> None:
        out.file.write(text)
        out.file.flush()

    with handled():
        settings = _settings()
        result = operations.ask(
            settings, question, user=user, groups=groups_of(settings, user), top_k=top_k,
            file_types=tuple(file_type or ()), folder=str(folder.expanduser().resolve()) if folder else None,
            collection=collection, on_token=on_token if stream_tokens else None,
        )  # fmt: skip
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_answer(result, streamed=stream_tokens and result["backend"] != "none")
    raise typer.Exit(EXIT_PARTIAL if result["flagged"] else 0)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="API address; anything but loopback needs a users file")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Also start the Streamlit UI, wired to the API")] = True,
    ui_port: Annotated[int, typer.Option(help="UI port")] = 8501,
) -> None:
    """Run the service that owns this knowledge base: the HTTP API (and the UI) for everyone."""
    from ragkb.service.run import serve as run_service

    _quiet_libraries(False)
    with handled():
        settings = _settings()
        err.print(f"ragkb service for {settings.home} on http://{host}:{port}" + (f", UI on http://{host}:{ui_port}" if ui else ""))
        run_service(settings, host, port, ui=ui, ui_port=ui_port)


app.command("chat")(chat)  # an interactive session with follow-up questions (ragkb/chat_cli.py)

users_app = typer.Typer(help="Manage UI/CLI users and their groups.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the audit log.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")


@users_app.command("add")
def users_add(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    group: Annotated[Optional[list[str]], typer.Option("--group", "-g", help="Group membership (repeat; none: only unrestricted documents)")] = None,
) -> None:
    """Create or replace a user in the users file (argon2-hashed password)."""
    from ragkb.users import add_user

    with handled():
        user = add_user(_settings(), name, password, list(group or []))
    out.print(f"user {user.name} in groups {', '.join(user.groups) or '(none)'}")


@users_app.command("token")
def users_token(name: str) -> None:
    """Issue an API token for a user (printed once; only its hash is stored)."""
    from ragkb.users import issue_token

    with handled():
        token = issue_token(_settings(), name)
    print(token)


@users_app.command("list")
def users_list() -> None:
    from ragkb.users import load_users

    with handled():
        for user in load_users(_settings()).values():
            out.print(f"{user.name}: {', '.join(user.groups) or '(no group)'}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain of the audit log; exit 1 if any record was changed or removed."""
    from ragkb.audit import verify_audit

    with handled():
        check = verify_audit(_settings())
    if check.ok:
        out.print(f"audit log intact: {check.records} records")
        return
    err.print(f"[red]error:[/red] audit log tampered: {escape(str(check.problem))} ({check.records} records verified before it)")
    raise typer.Exit(EXIT_PARTIAL)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 only behind a proxy or in compose")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8501,
) -> None:
    """Start the Streamlit chat UI."""
    import subprocess

    from ragkb.service.run import ui_command

    raise typer.Exit(subprocess.call(ui_command(host, port)))


@app.command(
    "eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def eval_command(ctx: typer.Context) -> None:
    """Evaluate retrieval and answers, run benchmarks (`ragkb eval --help`)."""
    from ragkb.eval.cli import eval_app  # loaded only here: the runtime never imports evaluation code

    eval_app(ctx.args, prog_name="ragkb eval")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
