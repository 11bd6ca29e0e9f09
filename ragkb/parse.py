"""Turn one file into blocks that keep page, section and element type, choosing the reader by
the file's type (`filetypes.detect_type`: by content where the name says nothing).

Files are checked before any parser sees them (size, magic bytes, encryption), because
unstructured silently returns nothing for an encrypted PDF and happily "parses" a PNG renamed
to .txt; an operator needs a named reason for every file that yields no text.

Readers: unstructured (`elements`) for PDF text layers, DOCX, PPTX, HTML, Markdown, text,
email and Outlook .msg; Tesseract (`ocr`) for images and PDF pages without a text layer;
`spreadsheets` for XLSX/XLS/ODS/CSV/TSV; `legacy` for .doc/.ppt; `opendoc` for ODT/ODP/EPUB;
`markup` for RST, Org, RTF, XML and JSON. Nothing here needs LibreOffice or pandoc.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Callable

from ragkb import scans
from ragkb.blocks import Block, NoTextFound, ParseError, Parsed
from ragkb.charsets import detect_encoding, html_encoding
from ragkb.config import Settings
from ragkb.containers import sniff_ole
from ragkb.elements import partition, to_blocks
from ragkb.filetypes import (
    SUPPORTED_SUFFIXES,
    NotRegularFile,
    detect_type,
    file_kind,
    looks_textual,
    read_bytes,
    unsupported_reason,
    zip_bomb_reason,
)
from ragkb.htmltext import LIBXML2_MAX_DEPTH, html_items, too_deep_for_lxml
from ragkb.plaintext import LAYOUT_MIN_CHARS, text_blocks

log = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SUFFIXES", "Block", "NoTextFound", "ParseError", "Parsed", "detect_type", "document_type", "parse_document",
           "parse_file", "unsupported_reason"]  # fmt: skip

_partition = partition  # module attribute: tests replace it to prove a file is never opened
_looks_textual = looks_textual  # the old private name, kept for callers
_TEXT_TYPES = {"html", "md", "text", "email", "csv", "tsv", "rst", "org", "json", "xml"}
_DECODED_TYPES = {"html", "md", "text", "csv", "tsv", "rst", "org", "json"}
_ENCRYPTED_MAIL = (b"application/pkcs7-mime", b"application/x-pkcs7-mime", b"multipart/encrypted")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_NAMES = {"docx": "Word document", "pptx": "PowerPoint presentation", "xlsx": "Excel workbook",
          "odt": "OpenDocument text", "odp": "OpenDocument presentation", "ods": "OpenDocument spreadsheet",
          "epub": "EPUB book", "doc": "Word 97-2003 document", "xls": "Excel 97-2003 workbook",
          "ppt": "PowerPoint 97-2003 presentation", "msg": "Outlook message"}  # fmt: skip
_ZIP_TYPES = {"docx", "pptx", "xlsx", "odt", "odp", "ods", "epub"}
_OLE_TYPES = {"doc", "xls", "ppt", "msg"}
_PROTECTED = "password-protected; save it without a password to ingest it"
_SHEET_EMPTY = "the workbook has no cells with values"
_EMPTY_HINTS = {"xlsx": _SHEET_EMPTY, "xls": _SHEET_EMPTY, "ods": _SHEET_EMPTY,
                "pptx": "only pictures? (images inside slides are not OCR'd)",
                "email": "no message body (attachments are not indexed)",
                "msg": "no message body (attachments are not indexed)"}  # fmt: skip


def document_type(path: Path) -> str | None:
    """Same as detect_type: ingest keys document ids on it, so it must not depend on the name."""
    return detect_type(path)


def parse_file(path: Path, settings: Settings) -> list[Block]:
    """Blocks of one file in reading order; raises ParseError with a human reason."""
    return parse_document(path, settings).blocks


def parse_document(path: Path, settings: Settings) -> Parsed:
    """Blocks of one file plus warnings for the ingest summary (e.g. low-confidence OCR pages)."""
    started = time.monotonic()
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):  # a FIFO would block the run forever, a device has side effects
        raise ParseError(f"not a regular file ({file_kind(mode)}): only regular files are parsed")
    doc_type = detect_type(path)
    if doc_type is None:
        raise ParseError(unsupported_reason(path))
    try:
        _check_file(path, doc_type, settings)
        text = _read_text(path, doc_type) if doc_type in _DECODED_TYPES else None
        parsed = _read(path, doc_type, text, settings, started)
    except NotRegularFile as exc:
        raise ParseError(f"{exc}: only regular files are parsed") from exc
    if not parsed.blocks:
        hint = _EMPTY_HINTS.get(doc_type)
        raise NoTextFound(f"no text could be extracted: {hint}" if hint else "no text could be extracted")
    return parsed


def _read(path: Path, doc_type: str, text: str | None, settings: Settings, started: float) -> Parsed:
    from ragkb import legacy, markup, opendoc, spreadsheets

    if doc_type == "pdf":
        return scans.pdf_document(path, settings, started, _partition)
    if doc_type == "image":
        return scans.image_document(path, settings, started)
    if doc_type == "html" and text is not None and too_deep_for_lxml(text):
        return Parsed(_deep_html_blocks(text, path))
    if doc_type == "json" and text is not None:
        blocks = markup.json_blocks(text)
        return Parsed(blocks if blocks is not None else to_blocks(_partition(path, "text", text), path))
    readers: dict[str, Callable[[], list[Block]]] = {
        "xlsx": lambda: spreadsheets.xlsx_blocks(path),
        "xls": lambda: spreadsheets.xls_blocks(path),
        "ods": lambda: spreadsheets.ods_blocks(path),
        "csv": lambda: spreadsheets.delimited_blocks(text or "", tab=False),
        "tsv": lambda: spreadsheets.delimited_blocks(text or "", tab=True),
        "doc": lambda: _prose_blocks(legacy.doc_paragraphs(path), path),
        "ppt": lambda: legacy.ppt_slides(path),
        "odt": lambda: opendoc.odt_blocks(path),
        "odp": lambda: opendoc.odp_blocks(path),
        "epub": lambda: _epub_blocks(path),
        "rtf": lambda: _prose_blocks(_rtf_items(markup.rtf_text(read_bytes(path))), path),
        "rst": lambda: markup.rst_blocks(text or ""),
        "org": lambda: markup.org_blocks(text or ""),
        "xml": lambda: markup.xml_blocks(read_bytes(path)),
        "encrypted": _encrypted_office,
    }
    if doc_type in readers:
        return Parsed(readers[doc_type]())
    if doc_type == "text" and text is not None:
        return Parsed(_plain_blocks(path, text))
    if doc_type == "msg":
        reason = legacy.msg_encryption_reason(path)
        if reason:
            raise ParseError(reason)
    return Parsed(to_blocks(_partition(path, doc_type, text), path))


def _encrypted_office() -> list[Block]:
    raise ParseError(f"encrypted Office document: {_PROTECTED}")


def _check_file(path: Path, doc_type: str, settings: Settings) -> None:
    size = path.stat().st_size
    if size == 0:
        raise ParseError("empty file (0 bytes)")
    limit = int(settings.max_file_mb * 1024 * 1024)
    if size > limit:
        raise ParseError(
            f"file too large: {size / 1048576:.1f} MB exceeds RAGKB_MAX_FILE_MB={settings.max_file_mb:g}"
        )
    head = read_bytes(path, 8192)
    name = _NAMES.get(doc_type, doc_type.upper())
    a_name = f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
    if doc_type == "pdf":
        if b"%PDF-" not in head[:1024]:
            raise ParseError("not a PDF: the file does not start with a PDF header (wrong extension?)")
    elif doc_type in _ZIP_TYPES and head.startswith(_OLE_MAGIC):
        if sniff_ole(path)[0] == "encrypted":  # Office keeps a password-protected OOXML file in OLE
            raise ParseError(f"encrypted {name}: {_PROTECTED}")
        raise ParseError(f"not {a_name}: a legacy OLE file with a new-style extension (wrong extension?)")
    elif doc_type in _ZIP_TYPES and not head.startswith(b"PK\x03\x04"):
        raise ParseError(f"not {a_name}: not a ZIP package (wrong extension or corrupt)")
    elif doc_type in _OLE_TYPES and not head.startswith(_OLE_MAGIC):
        raise ParseError(f"not {a_name}: not an OLE compound file (wrong extension or corrupt)")
    elif doc_type == "rtf" and not head.lstrip().startswith(b"{\\rtf"):
        raise ParseError("not an RTF document: the file does not start with {\\rtf (wrong extension?)")
    elif doc_type in _TEXT_TYPES and not looks_textual(head):
        raise ParseError(f"binary content in a {path.suffix.lower() or 'extension-less'} file (wrong extension?)")
    if head.startswith(b"PK\x03\x04"):  # before any zip-based parser inflates a member
        reason = zip_bomb_reason(path, settings.max_unzipped_mb)
        if reason:
            raise ParseError(reason)
    if doc_type in _TEXT_TYPES and not head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise ParseError("empty file (only whitespace)")
    if doc_type == "email" and any(marker in head.lower() for marker in _ENCRYPTED_MAIL):
        raise ParseError("encrypted email (S/MIME or PGP): the body cannot be read without the key")


def _read_text(path: Path, doc_type: str) -> str:
    """The file decoded here, not by unstructured, whose detector reads French as cp1250."""
    data = read_bytes(path)
    encoding = html_encoding(data) if doc_type == "html" else detect_encoding(data)
    log.debug("%s decoded as %s", path, encoding)
    return data.decode(encoding, errors="replace").lstrip("\ufeff")


def _deep_html_blocks(text: str, path: Path) -> list[Block]:
    items, depth = html_items(text)
    if not items:
        raise ParseError(
            f"no text could be extracted: HTML nested {depth} levels deep "
            f"(the HTML parser stops at {LIBXML2_MAX_DEPTH})"
        )
    log.info("%s nests deeper than %d levels: extracted without unstructured", path, LIBXML2_MAX_DEPTH)
    blocks: list[Block] = []
    section: str | None = None
    for kind, item in items:
        if kind == "title":
            section = item[:200]
        blocks.append(Block(item, None, section, kind))
    return blocks


def _prose_blocks(items: list[tuple[str, str]], path: Path) -> list[Block]:
    """Paragraphs through unstructured's text partitioner (it tells headings from body, as for
    .txt files); tables as they are, under the current heading."""
    blocks: list[Block] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            section = blocks[-1].section if blocks else None
            blocks.extend(_plain_blocks(path, "\n\n".join(run), section))
            run.clear()

    for kind, text in items:
        if kind == "table":
            flush()
            blocks.append(Block(text, None, blocks[-1].section if blocks else None, "table"))
        else:
            run.append(text)
    flush()
    return blocks


def _plain_blocks(path: Path, text: str, section: str | None = None) -> list[Block]:
    """unstructured's text partitioner, or for a long text (a book, an export) its layout:
    unstructured tags every paragraph with spaCy, minutes for a few megabytes (`plaintext`)."""
    if len(text) >= LAYOUT_MIN_CHARS:
        return text_blocks(text, section)
    return to_blocks(_partition(path, "text", text), path, section)


def _rtf_items(text: str) -> list[tuple[str, str]]:
    """striprtf ends each table cell with '|': consecutive such lines are one table."""
    items: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if line.endswith("|"):
            row = " | ".join(cell.strip() for cell in line.rstrip("|").split("|"))
            if items and items[-1][0] == "table":
                items[-1] = ("table", f"{items[-1][1]}\n{row}")
            else:
                items.append(("table", row))
        else:
            items.append(("text", line))
    return items


def _epub_blocks(path: Path) -> list[Block]:
    from ragkb.opendoc import epub_chapters

    blocks: list[Block] = []
    for chapter in epub_chapters(path):
        section = blocks[-1].section if blocks else None
        if too_deep_for_lxml(chapter):
            blocks.extend(_deep_html_blocks(chapter, path))
            continue
        chapter_blocks = to_blocks(_partition(path, "html", chapter), path, section)
        blocks.extend(Block(b.text, None, b.section, b.kind) for b in chapter_blocks)
    return blocks
