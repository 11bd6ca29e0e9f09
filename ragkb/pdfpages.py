"""Which PDF pages are scans: no text in the text layer, but an image to read.

unstructured's fast strategy (pdfminer) reads nothing from some PDFs whose text layer is fine
(two of the example documents: a repaired cross-reference table, negative coordinates); pypdf
reads those pages, so a page counts as a scan only when neither finds text on it.
A page with neither (a blank separator page, a page of vector drawings) is not sent to OCR:
rendering and recognising it costs seconds and finds nothing. A page with any text in its text
layer is never OCR'd, so a searchable PDF (text layer under the scan) is read as it is.
"""

from __future__ import annotations

import re
from typing import Any

from ragkb.blocks import Block

_INLINE_IMAGE = re.compile(rb"(?:^|\s)BI\s")
_MAX_DEPTH = 8


def scrambled_pages(blocks: list[Block]) -> list[int]:
    """Pages whose text came out as letters with spaces between ('R o t a e d p a g e'):
    pdfminer on rotated text. pypdf reads such pages in order."""
    tokens: dict[int, list[int]] = {}
    for block in blocks:
        if block.page is not None:
            counts = tokens.setdefault(block.page, [0, 0])
            words = block.text.split()
            counts[0] += sum(len(word) == 1 and word.isalpha() for word in words)
            counts[1] += len(words)
    return [page for page, (single, total) in tokens.items() if total >= 8 and single > total * 0.5]


def _scrambled(text: str) -> bool:
    words = text.split()
    return not words or sum(len(word) == 1 and word.isalpha() for word in words) > len(words) * 0.5


def text_layer_blocks(reader: Any, pages: list[int]) -> list[Block]:
    """The text layer of the given pages as pypdf reads it: one block per paragraph (blank
    line) or per page, which the chunker splits between sentences."""
    blocks: list[Block] = []
    for number in pages:
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except Exception:  # pypdf raises assorted errors on broken pages: OCR may still read it
            continue
        if _scrambled(text):
            continue
        for paragraph in re.split(r"\n\s*\n", text):
            cleaned = " ".join(paragraph.split())
            if cleaned:
                blocks.append(Block(cleaned, number, None, "text"))
    return blocks


def scanned_pages(reader: Any, with_text: set[int | None]) -> dict[int, float]:
    """Page number (1-based) -> longest side in points, for pages without text that show an image."""
    pages: dict[int, float] = {}
    for number, page in enumerate(reader.pages, start=1):
        if number in with_text or not _has_image(page):
            continue
        try:
            box = page.mediabox
            longest = max(abs(float(box.width)), abs(float(box.height)))
        except Exception:  # a broken MediaBox: assume Letter
            longest = 792.0
        pages[number] = longest if longest > 0 else 792.0
    return pages


def _has_image(page: Any) -> bool:
    try:
        if _resources_have_image(page.get("/Resources"), 0):
            return True
        contents = page.get_contents()
        return bool(contents is not None and _INLINE_IMAGE.search(contents.get_data()))
    except Exception:  # pypdf raises assorted errors on broken pages: let OCR try
        return True


def _resources_have_image(resources: Any, depth: int) -> bool:
    if resources is None or depth > _MAX_DEPTH:
        return False
    resources = resources.get_object()
    xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
    if xobjects is None:
        return False
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            return True
        if subtype == "/Form" and _resources_have_image(xobject.get("/Resources"), depth + 1):
            return True
    return False


def page_ranges(pages: dict[int, float] | list[int]) -> str:
    """'page 3', 'pages 2-4, 7' for a summary line."""
    numbers = sorted(pages)
    spans: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if number is not None:
            start = prev = number
    return f"page{'s' if len(numbers) > 1 else ''} {', '.join(spans)}"
