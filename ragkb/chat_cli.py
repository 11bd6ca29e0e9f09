"""`ragkb chat`: questions in a conversation, one per line, on a terminal or from stdin.

Each answer is asked with the conversation so far, so a follow-up ("and for part-time staff?")
is made standalone before retrieval (ragkb.conversation); the question searched for is shown
when it differs from what was typed. Like `ragkb ask`, it goes through the running service of
this RAGKB_HOME when there is one, and is audited (channel `cli`). `/reset` starts a new
conversation, `/quit` (or end of input) ends the session.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ragkb.console import err, out, print_answer
from ragkb.errors import RagkbError

QUIT = ("/quit", "/exit", "/q")
RESET = ("/reset", "/new")


def chat(
    user: Annotated[Optional[str], typer.Option(help="Answer as this user (their groups filter the documents)")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Passages per answer")] = None,
    file_type: Annotated[Optional[list[str]], typer.Option("--type", help="Only these document types (pdf, docx, ...)")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="Only documents under this folder")] = None,
    collection: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Ask questions in a conversation: follow-up questions use the earlier ones."""
    from ragkb import operations
    from ragkb.cli import _quiet_libraries, _settings, groups_of
    from ragkb.console import handled

    _quiet_libraries(False)
    with handled():
        settings = _settings()
        groups = groups_of(settings, user)
    interactive = sys.stdin.isatty()
    stream_tokens = interactive and out.is_terminal
    if interactive:
        out.print("[dim]Ask a question. /reset starts a new conversation; /quit or Ctrl-D ends.[/dim]")
    history: list[dict[str, str]] = []

    def on_token(text: str) -> None:
        out.file.write(text)
        out.file.flush()

    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        question = line.strip()
        if not question:
            continue
        if question.lower() in QUIT:
            break
        if question.lower() in RESET:
            history.clear()
            out.print("[dim]new conversation[/dim]")
            continue
        try:
            result = operations.ask(
                settings, question, user=user, groups=groups, top_k=top_k, file_types=tuple(file_type or ()),
                folder=str(folder.expanduser().resolve()) if folder else None, history=history,
                collection=collection, on_token=on_token if stream_tokens else None,
            )  # fmt: skip
        except RagkbError as exc:  # one bad question (too long, base busy) does not end the session
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            continue
        searched = result.get("standalone_question") or question
        if searched != question:
            out.print(f"[dim]searched for: {escape(searched)}[/dim]", highlight=False)
        print_answer(result, streamed=stream_tokens and result["backend"] != "none")
        out.print()
        history.extend([{"role": "user", "content": question}, {"role": "assistant", "content": result["answer"]}])
