"""What a PDF says about its own structure: its outline (bookmarks) and its printed page labels.

The outline is written by the program that made the PDF from the document's real headings, so
it names sections better than any guess from font sizes; each entry points at a page and
usually at a height on it, which places the heading among the page's text. Page labels are
the numbers printed on the pages ("iii", "12"): a citation that says "page 20" of a manual
whose page 20 is printed "12" sends the reader to the wrong page.

Both are optional and often broken; reading them never fails a parse: a PDF whose outline or
labels cannot be read is treated as one that has none.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_MAX_ENTRIES = 20_000  # an outline is a linked structure: bound the walk on a hostile file
_MAX_LABEL = 32  # a label is any string the PDF's author chose; it is shown in every citation


@dataclass(frozen=True)
class OutlineEntry:
    """One bookmark: its title, the page it opens (1-based), and the height it scrolls to,
    measured from the top of the page in points (None when the destination gives none)."""

    title: str
    page: int
    top: float | None


def clean_title(text: str) -> str:
    """Whitespace collapsed and compatibility characters folded (the 'ﬁ' ligature of a text
    layer against the 'fi' of a bookmark), so a bookmark and a line of text compare equal."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def outline_entries(reader: Any) -> list[OutlineEntry]:
    """The outline flattened in document order; entries whose destination cannot be resolved
    (external links, named destinations that point nowhere) are left out."""
    try:
        outline = reader.outline
    except Exception as exc:  # pypdf raises assorted errors on broken outlines
        log.debug("unreadable PDF outline: %s", exc)
        return []
    entries: list[OutlineEntry] = []
    stack: list[Any] = [iter(outline)]
    while stack and len(entries) < _MAX_ENTRIES:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            entry = _entry(reader, item)
            if entry is not None:
                entries.append(entry)
    return entries


def _entry(reader: Any, destination: Any) -> OutlineEntry | None:
    try:
        title = clean_title(str(destination.title or ""))
        index = reader.get_destination_page_number(destination)
        if not title or index is None or index < 0:
            return None
        top = destination.get("/Top")
        height = float(reader.pages[index].mediabox.top)
        distance = height - float(top) if _is_number(top) else None
    except Exception:  # a destination pypdf cannot resolve: skip the bookmark, keep the rest
        return None
    return OutlineEntry(title[:200], index + 1, distance)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def page_labels(reader: Any) -> dict[int, str]:
    """Page number (1-based) -> printed label, only for a PDF that defines labels (/PageLabels);
    without them pypdf invents "1", "2", ... which would say nothing new."""
    try:
        if "/PageLabels" not in reader.trailer["/Root"]:
            return {}
        return {number: clean_title(str(label))[:_MAX_LABEL] for number, label in enumerate(reader.page_labels, start=1)}
    except Exception as exc:  # a broken number tree: cite physical pages only
        log.debug("unreadable PDF page labels: %s", exc)
        return {}
