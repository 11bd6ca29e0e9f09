"""Checks the documentation benchmark's gold against the manuals themselves, independently of
ragkb's parsers, so a wrong page, a misplaced heading or a paraphrased "evidence" in the
question file is caught before it skews a score.

* Both: the evidence occurs once in the file, so exactly one place is the right citation.
* PDF: the printed label of the gold physical page (pypdf's page labels) is the gold label; the
  evidence is on that page's text layer; the gold section is an outline (bookmark) entry that
  covers the page -- it starts on or before it and the next entry starts on or after it.
* HTML: the evidence is in the file's text, inside the part that follows the gold heading
  (h1-h6) and precedes the next heading; an admonition's label rendered as a heading ("Warning"
  in gtk-doc) is not a section, so its text belongs to the heading above it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragkb.eval.docbench import Question, heading_key, normalise

_ADMONITIONS = {"note", "tip", "warning", "caution", "important"}
_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)


def _outline(reader: Any, items: Sequence[Any] | None = None) -> Iterator[tuple[str, int]]:
    """(title, physical page) of every bookmark, in document order."""
    for item in reader.outline if items is None else items:
        if isinstance(item, list):
            yield from _outline(reader, item)
        else:
            yield item.title, reader.get_destination_page_number(item) + 1


def check_pdf(question: Question, path: Path, readers: dict[Path, Any]) -> list[str]:
    from pypdf import PdfReader

    reader = readers.setdefault(path, PdfReader(path))
    problems = []
    page = question.page or 0
    if not 1 <= page <= len(reader.pages):
        return [f"page {page} is not in the file ({len(reader.pages)} pages)"]
    if reader.page_labels[page - 1] != question.page_label:
        problems.append(f"physical page {page} is labelled {reader.page_labels[page - 1]!r}, not {question.page_label!r}")
    evidence = normalise(question.evidence)
    pages = [normalise(p.extract_text() or "") for p in reader.pages]
    if evidence not in pages[page - 1]:
        problems.append(f"evidence not on physical page {page}")
    elif sum(text.count(evidence) for text in pages) > 1:
        problems.append("evidence occurs more than once in the file: a citation of either would be right")
    entries = list(_outline(reader))
    covering = [
        title for i, (title, start) in enumerate(entries)
        if start <= page and (i + 1 == len(entries) or entries[i + 1][1] >= page)
    ]
    if heading_key(question.section) not in {heading_key(title) for title in covering}:
        problems.append(f"section {question.section!r} is not an outline entry covering page {page} ({covering})")
    return problems


def check_html(question: Question, path: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8", errors="replace")
    evidence = normalise(question.evidence)
    parts = _HEADING.split(raw)  # text, heading, text, heading, text...
    sections: list[tuple[str, str]] = [("", parts[0])]
    for heading, text in zip(parts[1::2], parts[2::2]):
        title = normalise_heading(heading)
        if title.casefold() in _ADMONITIONS:
            sections[-1] = (sections[-1][0], sections[-1][1] + text)
        else:
            sections.append((title, text))
    if normalise(raw).count(evidence) > 1:
        return ["evidence occurs more than once in the file: a citation of either would be right"]
    for title, text in sections:
        if evidence in normalise(text):
            if heading_key(title) != heading_key(question.section):
                return [f"evidence sits under {title!r}, not {question.section!r}"]
            return []
    if evidence in normalise(raw):
        return ["evidence straddles a heading"]
    return ["evidence not in the file"]


def normalise_heading(markup: str) -> str:
    """A heading element's text: tags removed, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def check_questions(questions: Sequence[Question], corpus: Path) -> dict[str, list[str]]:
    """question id -> problems, for every question that has any."""
    readers: dict[Path, Any] = {}
    problems: dict[str, list[str]] = {}
    for question in questions:
        path = corpus / question.file
        if not path.is_file():
            found = [f"gold file {question.file} is not in the corpus"]
        elif question.format == "pdf":
            found = check_pdf(question, path, readers)
        else:
            found = check_html(question, path)
        if found:
            problems[question.id] = found
    return problems
