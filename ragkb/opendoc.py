"""ZIP packages of XML: OpenDocument text, presentations and spreadsheets (ODT, ODP, ODS) read
from their content.xml, and EPUB books as their chapters' XHTML in spine order.

Why not unstructured's partition_odt/partition_epub: both convert through pandoc (pypandoc),
a separate ~100 MB program, and neither handles ODP or ODS. The formats are plain XML in a
zip: headings are text:h, paragraphs text:p, slides draw:page, sheets table:table. XML is
parsed without DTDs, entities or network access (no XXE, no billion laughs).
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragkb.blocks import Block, ParseError

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
}
_SKIP = {f"{{{_NS['text']}}}note-citation", f"{{{_NS['office']}}}annotation", f"{{{_NS['text']}}}tracked-changes"}
# Frames (text boxes, images) inside a paragraph are walked as blocks of their own.
_TEXT_SKIP = _SKIP | {f"{{{_NS['draw']}}}frame"}
_MAX_REPEAT = 256  # ODS repeats empty rows/cells by count, up to a million


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{_NS[prefix]}}}{name}"


def safe_xml(data: bytes) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"malformed XML: {str(exc)[:200]}") from exc


def _member(path: Path, name: str, what: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)
    except KeyError as exc:
        raise ParseError(f"corrupt {what}: {name} is missing") from exc
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:  # RuntimeError: encrypted member
        if "encrypt" in str(exc).lower() or "password" in str(exc).lower():
            raise ParseError(f"encrypted {what}: password-protected; save it without a password to ingest it") from exc
        raise ParseError(f"corrupt {what}: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _content(path: Path, what: str) -> Any:
    manifest = _member(path, "META-INF/manifest.xml", what)
    if b"encryption-data" in manifest:  # ODF encrypts the members, not the zip
        raise ParseError(f"encrypted {what}: password-protected; save it without a password to ingest it")
    root = safe_xml(_member(path, "content.xml", what))
    body = root.find(_q("office:body"))
    if body is None:
        raise ParseError(f"corrupt {what}: content.xml has no body")
    return body


def _text(element: Any) -> str:
    """The visible text of an element: spans, links, spaces (text:s), tabs and line breaks."""
    parts: list[str] = [element.text or ""]
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == _q("text:s"):
            parts.append(" " * min(int(child.get(_q("text:c"), "1") or 1), 100))
        elif tag in (_q("text:tab"), _q("text:line-break")):
            parts.append(" ")
        elif tag not in _TEXT_SKIP:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def odt_blocks(path: Path) -> list[Block]:
    body = _content(path, "OpenDocument text")
    blocks: list[Block] = []
    _walk_text(body, blocks, None, [None])
    return blocks


def _walk_text(element: Any, blocks: list[Block], page: int | None, section: list[str | None]) -> None:
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == _q("text:h"):
            text = " ".join(_text(child).split())
            if text:
                section[0] = text[:200]
                blocks.append(Block(text, page, section[0], "title"))
        elif tag == _q("text:p"):
            _walk_text(child, blocks, page, section)  # frames with text boxes sit inside paragraphs
            text = " ".join(_text(child).split())
            if text:
                blocks.append(Block(text, page, section[0], "text"))
        elif tag == _q("text:list-item"):
            text = " ".join(_text(child).split())
            if text:
                blocks.append(Block(text, page, section[0], "list"))
        elif tag == _q("table:table"):
            rows = list(_table_rows(child))
            lines = [" | ".join(cells).rstrip(" |") for cells in rows if any(cells)]
            if lines:
                blocks.append(Block("\n".join(lines), page, section[0], "table"))
        elif tag not in _SKIP and tag != _q("presentation:notes"):
            _walk_text(child, blocks, page, section)


def _table_rows(table: Any) -> Iterator[list[str]]:
    for row in table.iter(_q("table:table-row")):
        repeat = min(int(row.get(_q("table:number-rows-repeated"), "1") or 1), _MAX_REPEAT)
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (_q("table:table-cell"), _q("table:covered-table-cell")):
                continue
            text = " ".join(" ".join(_text(p).split()) for p in cell.iter(_q("text:p"))).strip()
            count = min(int(cell.get(_q("table:number-columns-repeated"), "1") or 1), _MAX_REPEAT)
            cells.extend([text] * (count if text else min(count, 1)))
        while cells and not cells[-1]:
            cells.pop()
        for _ in range(repeat if cells else 1):
            yield cells


def odp_blocks(path: Path) -> list[Block]:
    body = _content(path, "OpenDocument presentation")
    blocks: list[Block] = []
    for number, page in enumerate(body.iter(_q("draw:page")), start=1):
        title: str | None = None
        for frame in page.iter(_q("draw:frame")):
            if frame.get(_q("presentation:class")) == "title":
                title = " ".join(_text(frame).split())[:200] or None
        start = len(blocks)
        _walk_text(page, blocks, number, [title])
        for i in range(start, len(blocks)):  # the slide title is the section of the whole slide
            block = blocks[i]
            kind = "title" if title and block.text == title and block.kind != "table" else block.kind
            blocks[i] = Block(block.text, number, title, kind)
    return blocks


def ods_sheets(path: Path) -> Iterator[tuple[str, Iterator[list[str]]]]:
    body = _content(path, "OpenDocument spreadsheet")
    for table in body.iter(_q("table:table")):
        yield table.get(_q("table:name"), "Sheet"), _table_rows(table)


# --- EPUB ---------------------------------------------------------------------------------------


def epub_chapters(path: Path) -> list[str]:
    """The XHTML of each chapter in reading order (the OPF spine)."""
    container = safe_xml(_member(path, "META-INF/container.xml", "EPUB book"))
    rootfile = next((e.get("full-path") for e in container.iter() if str(e.tag).endswith("rootfile")), None)
    if not rootfile:
        raise ParseError("corrupt EPUB book: container.xml names no package file")
    opf = safe_xml(_member(path, rootfile, "EPUB book"))
    items = {e.get("id"): e for e in opf.iter() if str(e.tag).endswith("}item")}
    base = posixpath.dirname(rootfile)
    chapters: list[str] = []
    with zipfile.ZipFile(path) as archive:
        for ref in (e for e in opf.iter() if str(e.tag).endswith("}itemref")):
            item = items.get(ref.get("idref"))
            if item is None or "html" not in (item.get("media-type") or ""):
                continue
            name = posixpath.normpath(posixpath.join(base, item.get("href") or ""))
            try:
                data = archive.read(name)
            except (KeyError, RuntimeError, zipfile.BadZipFile):
                continue  # a missing chapter costs that chapter, not the book
            chapters.append(data.decode("utf-8", errors="replace"))
    if not chapters:
        raise ParseError("EPUB book has no readable chapters")
    return chapters
