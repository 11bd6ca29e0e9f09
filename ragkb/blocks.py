"""What every parser returns: blocks of text in reading order, each with its page, section and
element kind, plus notes for the ingest summary. Its own module so that the per-format readers
(`ocr`, `spreadsheets`, `legacy`, `opendoc`, `markup`) and `parse` share it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field


class ParseError(Exception):
    """A file that cannot be turned into text; the message is the reason shown to operators."""


class NoTextFound(ParseError):
    """A readable file with nothing to index: a photo, a blank scan. Reported like any other
    failure unless ingest chooses to list it as skipped."""


@dataclass(frozen=True)
class Block:
    text: str
    page: int | None  # PDF/TIFF page, slide, or sheet number (1-based); None where a format has none
    section: str | None  # heading, sheet name, or email subject the text is under
    kind: str  # title | text | list | table
    ocr: bool = False  # recognised by OCR from an image, not read from a text layer
    page_label: str | None = None  # the number printed on a PDF page ("iii", "12") where it has labels


@dataclass
class Parsed:
    """`parse_document`'s answer: the blocks, and what an operator should hear about this file
    even though it parsed (low-confidence OCR pages, pages left unread)."""

    blocks: list[Block]
    warnings: list[str] = field(default_factory=list)
    ocr_pages: int = 0  # pages (or image frames) that went through OCR
    ocr_seconds: float = 0.0  # wall time spent rendering and recognising them
