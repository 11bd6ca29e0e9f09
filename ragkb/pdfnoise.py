"""What on a PDF's pages is not content: tables of contents and running headers or footers.

A table of contents repeats every heading of the document next to a page number; indexed, its
lines outrank the sections they name for any question about a heading, and cite a page that
holds no answer (485 chunks of one manual were TOC fragments). Running headers and footers
("GNU Bash 5.2", "2022 September 19") that pdfminer does not mark as such repeat on every page,
and the fast strategy calls them titles, so they became section names.

Both are recognised on `Line`s, the elements of a PDF with their page and height on it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

# Dot leaders: ". . . ." or "....." (four dots at least: an ellipsis has three).
_LEADER = re.compile(r"(?:\.\s*){4,}")
# The page number a TOC line ends with; pdfminer often reads leaders and numbers apart.
_ENDS_WITH_PAGE = re.compile(r"\s(?:\d{1,4}|[ivxlcdm]{1,7})$", re.IGNORECASE)
_LEADER_TO_PAGE = re.compile(r"(?:\.\s*){4,}\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*$", re.IGNORECASE)
_ONLY_LEADER = re.compile(r"[.\s]+")
_ONLY_NUMBERS = re.compile(r"[\d\s.]*\d[\d\s.]*")
_CONTENTS = re.compile(r"(?:table of )?contents|list of (?:tables|figures|examples|illustrations)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;,]\s+\S+$")
_MIN_LINES = 4  # a page with fewer lines says too little to be called a TOC
_TOC_SHARE = 0.5
_MARGIN = 0.12  # headers and footers sit in the top or bottom 12% of the page
_FURNITURE_SHARE = 0.4  # ... and repeat on at least this share of the pages
_FURNITURE_MIN_PAGES = 3
_FURNITURE_MAX_WORDS = 12


@dataclass(frozen=True)
class Line:
    """One element of a PDF page: text, unstructured's category, page (1-based), top of the
    element and height of the page in points (None where unstructured gives no coordinates)."""

    text: str
    category: str
    page: int | None
    y: float | None = None
    page_height: float | None = None


def is_leader_line(text: str) -> bool:
    """Dot leaders, alone or with the heading and page number they join."""
    return bool(_LEADER.search(text))


def is_toc_entry(text: str) -> bool:
    """A line only a table of contents has, wherever it stands (a chapter's own contents on a
    page of body text): dot leaders ending in a page number, or dot leaders alone."""
    return bool(_LEADER_TO_PAGE.search(text) or _ONLY_LEADER.fullmatch(text))


def _toc_like(text: str) -> bool:
    """Dot leaders, a run of page numbers, or a short line that ends in a page number after a
    word (not after a sentence: "see Section 4.4." is body text)."""
    if is_leader_line(text) or _ONLY_NUMBERS.fullmatch(text):
        return True
    return len(text.split()) <= 20 and bool(_ENDS_WITH_PAGE.search(text)) and not _SENTENCE_END.search(text)


def toc_pages(lines: list[Line]) -> set[int]:
    """Pages that are a table of contents (or a back-of-book index, which is the same: terms and
    page numbers): most of their lines, or most of their text, are TOC lines, and the page has
    dot leaders, a "Contents" heading, or follows a TOC page (a TOC without leaders, set as
    "2.1 People around Debian 3"). A page of figures whose every line ends in a number has none
    of these and stays."""
    by_page: dict[int, list[str]] = defaultdict(list)
    for line in lines:
        if line.page is not None:
            by_page[line.page].append(line.text)
    found: set[int] = set()
    for page in sorted(by_page):
        texts = by_page[page]
        if len(texts) < _MIN_LINES:
            continue
        toc = [text for text in texts if _toc_like(text)]
        share = max(len(toc) / len(texts), sum(map(len, toc)) / sum(map(len, texts)))
        signal = (
            any(is_leader_line(text) for text in texts)
            or any(_CONTENTS.fullmatch(text.strip()) for text in texts)
            or page - 1 in found
        )
        if share >= _TOC_SHARE and signal:
            found.add(page)
    return found


def _furniture_key(text: str) -> str:
    """Page numbers and dates vary from page to page: digits are one symbol."""
    return re.sub(r"\d+", "#", " ".join(text.casefold().split()))


def _in_margin(line: Line) -> bool:
    if line.y is None or not line.page_height:
        return True  # no coordinates: repetition alone decides
    return line.y < line.page_height * _MARGIN or line.y > line.page_height * (1 - _MARGIN)


def furniture(lines: list[Line]) -> set[str]:
    """Keys (see `is_furniture`) of short lines that sit in a page margin on most pages."""
    pages_with_text = {line.page for line in lines if line.page is not None}
    needed = max(_FURNITURE_MIN_PAGES, _FURNITURE_SHARE * len(pages_with_text))
    seen: dict[str, set[int]] = defaultdict(set)
    for line in lines:
        if line.page is not None and len(line.text.split()) <= _FURNITURE_MAX_WORDS and _in_margin(line):
            seen[_furniture_key(line.text)].add(line.page)
    return {key for key, pages in seen.items() if len(pages) >= needed}


def is_furniture(line: Line, keys: set[str]) -> bool:
    return _in_margin(line) and _furniture_key(line.text) in keys
