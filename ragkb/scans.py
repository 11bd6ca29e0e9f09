"""Scanned documents: PDFs read from their text layer where they have one and through OCR where
they do not, and image files through OCR. The PDF checks (encryption, page count) live here too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ragkb import ocr
from ragkb.blocks import NoTextFound, ParseError, Parsed
from ragkb.config import Settings
from ragkb.pdfoutline import OutlineEntry, outline_entries, page_labels
from ragkb.pdfpages import page_ranges, scanned_pages, scrambled_pages, text_layer_blocks
from ragkb.pdfstructure import page_facts, pdf_blocks, pdf_lines


def check_pdf(path: Path, settings: Settings) -> Any:
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
    return reader


def pdf_document(path: Path, settings: Settings, started: float, partition: Callable[..., list[Any]]) -> Parsed:
    """The text layer through unstructured (`partition`), sectioned by the outline
    (`pdfstructure`); pages with none but with an image through OCR; every block labelled with
    its printed page number. `started`: when parsing this file began (time.monotonic), for
    OCR's budget."""
    reader = check_pdf(path, settings)  # first: unstructured returns nothing for an encrypted PDF
    outline = outline_entries(reader)
    parsed = _read_pdf(path, reader, outline, settings, started, partition)
    parsed.blocks = page_facts(parsed.blocks, page_labels(reader), outline)
    return parsed


def _read_pdf(path: Path, reader: Any, outline: list[OutlineEntry], settings: Settings, started: float,
              partition: Callable[..., list[Any]]) -> Parsed:  # fmt: skip
    elements = partition(path, "pdf")
    blocks, contents = pdf_blocks(pdf_lines(elements), outline)
    with_text = {getattr(e.metadata, "page_number", None) for e in elements if (getattr(e, "text", "") or "").strip()}
    kept = {block.page for block in blocks} | contents  # a TOC page was read: it is not read again
    missed = [n for n in range(1, len(reader.pages) + 1) if n not in kept]
    # pdfminer read nothing, only "headers" (negative coordinates) or scattered letters (rotated
    # text): pypdf reads the text layer of those pages instead
    redo = missed + scrambled_pages(blocks)
    if redo:
        rescued = text_layer_blocks(reader, redo)
        replaced = {block.page for block in rescued}
        with_text |= replaced
        blocks = sorted([b for b in blocks if b.page not in replaced] + rescued, key=lambda block: block.page or 0)
    scanned = scanned_pages(reader, with_text)
    if not scanned:
        if not blocks:
            raise NoTextFound("no text could be extracted: the PDF has neither a text layer nor images")
        return Parsed(blocks)
    reason = ocr.unavailable_reason(settings, pdf=True)
    if reason:
        if not blocks:
            raise ParseError(f"no text layer: scanned or image-only PDF; {reason}")
        return Parsed(blocks, [f"{page_ranges(scanned)} without a text layer not read: {reason}"])
    result = ocr.ocr_pdf_pages(path, scanned, settings, started)
    merged = sorted(blocks + result.blocks, key=lambda block: block.page or 0)  # stable: order within a page kept
    if not merged:
        raise NoTextFound(f"no text layer, and OCR found no text on {page_ranges(scanned)} (blank or photo pages?)")
    return Parsed(merged, result.warnings, result.pages, round(result.seconds, 3))


def image_document(path: Path, settings: Settings, started: float) -> Parsed:
    reason = ocr.unavailable_reason(settings)
    if reason:
        raise ParseError(f"image file, not read: {reason}")
    result = ocr.ocr_image(path, settings, started)
    if not result.blocks:
        raise NoTextFound(f"OCR found no text in this image ({result.pages} page(s)): a photo or a blank scan?")
    return Parsed(result.blocks, result.warnings, result.pages, round(result.seconds, 3))

