"""A PDF's elements turned into blocks whose section is the heading the text is really under.

unstructured's fast strategy calls any short line a Title: a wrapped list item, a shell
command ("# poweroff -i -f"), a running footer, an admonition label ("Note"). Taken as
headings they name the wrong section ("3.2.4 Going on vacation gracefully" read as body text
under "3.2.3 Voting"; 134 chunks of one manual under "# poweroff -i -f") and, because every
title closes a chunk, they cut the text into pieces of a few words.

Where the PDF has an outline (bookmarks) it is authoritative: each bookmark is placed among the
page's elements by the printed heading it names, or by the height it points at, and every
element up to the next bookmark is in its section. Only elements before the first bookmark
(title page, preface), and PDFs without an outline, fall back to `looks_like_heading`. A Title
that is not a heading becomes body text, so the chunker packs it with its neighbours. Tables
of contents and running headers and footers are dropped first (`pdfnoise`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import replace
from typing import Any

from ragkb.blocks import Block
from ragkb.pdfnoise import Line, furniture, is_furniture, is_toc_entry, toc_pages
from ragkb.pdfoutline import OutlineEntry, clean_title

# Categories that are page furniture or pictures, never indexed (as for every format).
_DROPPED = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "FigureCaption"}
_KINDS = {"Title": "text", "Table": "table", "ListItem": "list"}  # a Title is a heading only if proven
# "2.1", "3.2.4.", "A.1", "Chapter 2", "Appendix B": the numbering printed before a heading.
_NUMBER = r"(?:(?:chapter|appendix|part|section)\s+)?(?:\d+|[A-Z])(?:\.\d+)*\.?"
_NUMBERED = re.compile(rf"^{_NUMBER}\s+(?=\S)", re.IGNORECASE)
_SUBNUMBERED = re.compile(r"^(?:\d+|[A-Z])(?:\.\d+)+\.?\s+[^\W\d_]")  # "3.2.4 Going on ..."
_LABEL = re.compile(r"(?:chapter|appendix|part)\s+\w{1,6}", re.IGNORECASE)  # "Chapter 2" above "Prerequisites"
_ROMAN_OR_NUMBER = re.compile(r"[\d.\s]+|[ivxlcdm]{1,7}\.?", re.IGNORECASE)  # "12", "4.9.1 4.9.2", "iv"
_CODE_CHARS = set("$#{}<>|\\`=@^~;_")
_OPTION = re.compile(r"(?<![\w\u2212-])[\u2212-]{1,2}[A-Za-z]")  # "-T", "--login", "−−login" (groff's minus)
_RUN_ON = re.compile(r"[.;]\s+[a-z]")  # a sentence that goes on: "Same as -T. hashall"
_SECTION_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)+\.?\s|\d+\.?\s+[^\W\d_]*[A-Z])")  # "3.2 mc", "2 Prerequisites"
_ADMONITIONS = {"note", "tip", "hint", "warning", "caution", "important", "danger", "example", "notes", "tips"}
_MAX_HEADING_WORDS = 14
_SLACK = 24.0  # points: a bookmark's height and the text's top differ by a line at most
_SECTION_CHARS = 200


def looks_like_heading(text: str) -> bool:
    """Whether a line the layout calls a title reads like a heading, not like code, a prompt,
    a term being defined, a sentence or a page number.

    Rejected: lines that start with a symbol (`# poweroff -i -f`, `$ ls`, `--login`, quotes),
    lines with shell or code characters (`BASH_ENV`) or command-line options, a lowercase
    start without section numbering (`dh $@`, `metacharacter`, `3 arguments`), a sentence or
    lead-in ending in . : ; , (`Debian GNU/Linux is:`) or running on past a full stop, bare
    numbers and roman numerals, single letters, admonition labels (`Note`), and anything over
    14 words.
    """
    text = " ".join(text.split())
    words = text.split()
    if not words or len(words) > _MAX_HEADING_WORDS or len(text) < 2 or _ROMAN_OR_NUMBER.fullmatch(text):
        return False
    if not text[0].isalnum() or any(char in _CODE_CHARS for char in text) or text[-1] in ".:;,":
        return False
    if _OPTION.search(text) or _RUN_ON.search(text):
        return False
    first_letter = next((char for char in text if char.isalpha()), "")
    if text[0].isdigit() and not _SECTION_NUMBER.match(text):
        return False
    if not first_letter or (first_letter.islower() and not text[0].isdigit()):
        return False
    return text.casefold() not in _ADMONITIONS


def _comparable(text: str) -> str:
    return clean_title(text).casefold().rstrip(" .")


def printed_heading(text: str, title: str) -> str | None:
    """The printed form of bookmark `title` at the start of `text` ("2.1 People around Debian"
    for the bookmark "People around Debian"), or None when `text` is not that heading. A
    numbered heading may run on into its first paragraph, as pdfminer often joins them; an
    unnumbered one must be the whole line ("Pipelines are ..." is not the heading "Pipelines")."""
    line, wanted = clean_title(text), _comparable(title)
    numbered = _NUMBERED.match(line)
    for start in (0, numbered.end()) if numbered else (0,):
        head, rest = line[start : start + len(wanted)], line[start + len(wanted) :].rstrip(" .")
        if wanted and head.casefold() == wanted and (not rest or (start and rest[0] == " ")):
            return line[: start + len(wanted)]
    return None


class _Anchors:
    """Where each bookmark's section starts among the lines: (line index, section name), and
    the lines that are the printed headings themselves."""

    def __init__(self, lines: list[Line], entries: list[OutlineEntry]) -> None:
        by_page: dict[int, list[int]] = {}
        for index, line in enumerate(lines):
            if line.page is not None:
                by_page.setdefault(line.page, []).append(index)
        self.line_pages = [line.page or 0 for line in lines]  # in page order, as unstructured reads
        self.starts: list[int] = []
        self.names: list[str] = []
        self.headings: set[int] = set()
        last = 0
        for entry in entries:
            on_page = [i for i in by_page.get(entry.page, []) if i >= last]
            below = [i for i in on_page if entry.top is None or lines[i].y is None or lines[i].y >= entry.top - _SLACK]
            start, name = self._place(lines, entry, below, last)
            self.starts.append(start)
            self.names.append(name[:_SECTION_CHARS])
            last = start

    def _place(self, lines: list[Line], entry: OutlineEntry, below: list[int], last: int) -> tuple[int, str]:
        for index in below:
            printed = printed_heading(lines[index].text, entry.title)
            if printed is not None:
                if len(printed) >= len(clean_title(lines[index].text).rstrip(" .")):
                    self.headings.add(index)  # the line is the heading alone
                while index > below[0] and _LABEL.fullmatch(lines[index - 1].text.strip()):
                    index -= 1  # "Chapter 2" printed above the title opens the chapter too
                    self.headings.add(index)
                return index, printed
        if below:
            return below[0], entry.title
        # the bookmark points below the page's last line: its section starts on the next page
        return max(last, bisect_right(self.line_pages, entry.page)), entry.title

    def section_at(self, index: int) -> str | None:
        """The section of line `index`; None before the first bookmark."""
        position = bisect_right(self.starts, index) - 1
        return self.names[position] if position >= 0 else None

    def before_first(self, index: int) -> bool:
        return not self.starts or index < self.starts[0]


def pdf_lines(elements: list[Any]) -> list[Line]:
    """The elements with text, in reading order, with their position where known."""
    lines: list[Line] = []
    for element in elements:
        text = (getattr(element, "text", "") or "").strip()
        category = getattr(element, "category", "")
        if not text or category in _DROPPED:
            continue
        metadata = element.metadata
        coordinates = getattr(metadata, "coordinates", None)
        y = height = None
        if coordinates is not None and coordinates.points:
            y = min(point[1] for point in coordinates.points)
            height = getattr(coordinates.system, "height", None)
        lines.append(Line(text, category, getattr(metadata, "page_number", None), y, height))
    return lines


def pdf_blocks(lines: list[Line], outline: list[OutlineEntry]) -> tuple[list[Block], set[int]]:
    """Blocks with true sections, and the pages dropped as a table of contents (the caller
    must not read those again from the text layer)."""
    contents = toc_pages(lines)
    repeated = furniture(lines)
    kept = [line for line in lines if line.page not in contents and not is_furniture(line, repeated) and not is_toc_entry(line.text)]
    anchors = _Anchors(kept, outline)
    blocks: list[Block] = []
    section: str | None = None
    for index, line in enumerate(kept):
        kind = _KINDS.get(line.category, "text")
        if anchors.before_first(index):
            if _heading(line):
                section, kind = " ".join(line.text.split())[:_SECTION_CHARS], "title"
        else:
            section = anchors.section_at(index)
            if index in anchors.headings:
                kind = "title"
        blocks.append(Block(line.text, line.page, section, kind))
    return blocks, contents


def _heading(line: Line) -> bool:
    """Without a bookmark: a Title that reads like a heading, or a numbered heading ("3.2.4
    Going on vacation gracefully") the layout took for a paragraph."""
    if line.category == "Title":
        return looks_like_heading(line.text)
    return bool(_SUBNUMBERED.match(line.text)) and looks_like_heading(line.text)


def page_facts(blocks: list[Block], labels: dict[int, str], outline: list[OutlineEntry]) -> list[Block]:
    """Every block with its page's printed label, and text read without positions (pypdf's
    rescue of a page pdfminer garbled, OCR of a scanned page) in the section of the last
    bookmark at or before its page."""
    ordered = sorted(outline, key=lambda entry: entry.page)  # stable: document order within a page
    pages = [entry.page for entry in ordered]
    finished: list[Block] = []
    for block in blocks:
        page = block.page or 0
        section = block.section
        position = bisect_right(pages, page) - 1
        if section is None and position >= 0:
            section = ordered[position].title
        finished.append(replace(block, section=section, page_label=labels.get(page, block.page_label)))
    return finished
