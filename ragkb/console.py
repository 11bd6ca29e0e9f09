"""How the `ragkb` command shows results on a terminal: ingest progress and summary, status
tables, answers with their sources. Pure presentation: no decisions are made here."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ragkb.errors import EXIT_USAGE, RagkbError
from ragkb.ingest import FINAL_OUTCOMES, IngestReport, ProgressCallback
from ragkb.pageref import page_reference

err = Console(stderr=True, soft_wrap=True)  # an error stays one line a script can grep
out = Console()


@contextmanager
def handled(bad_input: tuple[type[Exception], ...] = (), prefix: str = "") -> Iterator[None]:
    """The one place a ragkb error becomes a message and an exit code (`ragkb.errors`).
    `bad_input`: other exceptions a command treats as a usage error (exit 2)."""
    try:
        yield
    except RagkbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from exc
    except bad_input as exc:
        err.print(f"[red]error:[/red] {escape(prefix + str(exc))}")
        raise typer.Exit(EXIT_USAGE) from exc


def run_with_progress(run: Callable[[ProgressCallback, Callable[[int], None]], IngestReport]) -> IngestReport:
    """A progress bar on stderr around an ingest `run(progress, total)`."""
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
            progress.update(task, total=count, completed=0, description="")

        def on_file(path: str, event: str) -> None:
            if event in ("unchanged", "skipped"):
                return
            advance = 1 if event in FINAL_OUTCOMES else 0
            progress.update(task, advance=advance, description=escape(f"{event}: {Path(path).name}"))

        return run(on_file, on_total)


def print_report(report: IngestReport) -> None:
    out.print(
        f"[bold]{escape(report.collection)}[/bold]: added {report.added}, updated {report.updated}, "
        f"unchanged {report.unchanged}, deleted {report.deleted}, skipped {len(report.skipped)}, "
        f"failed {len(report.failed)}; {report.chunks} chunks embedded in {report.seconds:.1f}s"
        + (f" ({report.chunks / report.seconds:.1f} chunks/s)" if report.chunks and report.seconds else "")
    )
    if report.added + report.updated + report.deleted == 0 and not report.chunks:
        out.print("nothing changed: no document was embedded")
    _table("Skipped (not ingested)", "skipped file", [(s.path, s.reason) for s in report.skipped])
    _table("Failures", "failed file", [(f.path, f.error) for f in report.failed])
    _table("Warnings (ingested, worth a look)", "file", [(w.path, w.error) for w in report.warnings])


def _table(title: str, first: str, rows: list[tuple[str, str]]) -> None:
    if not rows:
        return
    table = Table(first, "reason", title=title, title_justify="left")
    for path, reason in rows:
        table.add_row(escape(path), escape(reason))
    out.print(table)


def print_status(info: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if key in ("failed", "skipped", "warnings"):
            continue
        if key == "last_run" and value:
            value = describe_run(value)
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
        table.add_row(f"[bold]{key}[/bold]", escape(shown))
    out.print(table)
    _table("Failed files", "failed file", [(f["path"], f["error"] or "") for f in info.get("failed") or []])
    _table("Skipped in the last run", "skipped file", [(s["path"], s["reason"]) for s in info.get("skipped") or []])
    _table("Warnings in the last run", "file", [(w["path"], w["error"]) for w in info.get("warnings") or []])


def describe_run(run: dict[str, Any]) -> str:
    started = datetime.datetime.fromtimestamp(float(run["started_at"])).strftime("%Y-%m-%d %H:%M:%S")
    summary = run.get("summary")
    if not summary:
        return f"started {started}, did not finish (killed or still running)"
    skipped = summary.get("skipped")
    return (
        f"{started}: added {summary['added']}, updated {summary['updated']}, unchanged {summary['unchanged']}, "
        f"deleted {summary['deleted']}, skipped {len(skipped) if isinstance(skipped, list) else skipped or 0}, "
        f"failed {len(summary['failed'])}, {summary['chunks']} chunks in {summary['seconds']:.1f}s"
    )


def print_answer(result: dict[str, Any], streamed: bool) -> None:
    """`result`: the JSON contract of `ragkb ask --json` (the same in-process and via the service)."""
    if streamed:
        out.print()
        out.print(f"[dim]checked answer:[/dim] {escape(result['answer'])}" if result["warnings"] else "")
    else:
        out.print(result["answer"], markup=False, highlight=False)
    shown = result["citations"] or result["passages"]
    if shown:
        out.print("\n[bold]Sources[/bold]" + ("" if result["citations"] else " (retrieved, not cited)"))
    for c in shown:
        where = ", ".join(x for x in [
            page_reference(c["page"], c.get("page_label")),
            f"section: {c['section']}" if c["section"] else "",
            "OCR" if c.get("ocr") else "",
        ] if x)  # fmt: skip
        out.print(f"[bold][{c['n']}][/bold] " + escape(c["source"] + (f" ({where})" if where else "")), highlight=False)
        quote = " ".join(c["text"].split())
        out.print(f"    [dim]\"{escape(quote[:240])}{'…' if len(quote) > 240 else ''}\"[/dim]", highlight=False)
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result["timings_ms"].items())
    err.print(f"[dim]backend: {escape(result['backend'])}; {timings}[/dim]")
