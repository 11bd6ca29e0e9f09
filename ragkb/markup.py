"""Text formats with light markup: reStructuredText and Org (headings, lists, tables read from
their syntax), RTF (control words stripped by striprtf), XML and JSON (records as
`name: value` lines, so a field and its value are found together).

Why not unstructured's partition_rst/partition_org/partition_rtf: all three convert through
pandoc, a separate program; the syntax needed here is a few regular expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ragkb.blocks import Block, ParseError

_RST_UNDERLINE = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)]|#\.)\s+")
_RST_DIRECTIVE = re.compile(r"^\.\.\s+([\w:-]+::.*|_[^:]*:.*|\|[^|]+\|.*)?$")
_RST_INLINE = [(re.compile(r"`([^`<]+?)\s*<[^>]+>`__?"), r"\1"), (re.compile(r":[\w-]+:`([^`]+)`"), r"\1"),
               (re.compile(r"``([^`]+)``"), r"\1"), (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),
               (re.compile(r"(?<!\w)\*([^*\s][^*]*)\*"), r"\1"), (re.compile(r"`([^`]+)`_?"), r"\1")]  # fmt: skip
_ORG_HEADLINE = re.compile(r"^(\*+)\s+(?:(?:TODO|DONE)\s+)?(?:\[#[A-C]\]\s+)?(.*?)(?:\s+:[\w@#%:]+:)?\s*$")
_ORG_KEYWORD = re.compile(r"^\s*#\+(\w+):?\s*(.*)$")
_ORG_INLINE = [(re.compile(r"\[\[[^\]]+\]\[([^\]]+)\]\]"), r"\1"), (re.compile(r"\[\[([^\]]+)\]\]"), r"\1"),
               (re.compile(r"(?<![\w*/=~+])([*/=~+])(\S(?:.*?\S)?)\1(?![\w*/=~+])"), r"\2")]  # fmt: skip


def _inline(text: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def rst_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    out: list[tuple[str, str]] = []  # (kind, text) before sections are assigned
    paragraph: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _RST_UNDERLINE.match(line) and nxt.strip() and i + 2 < len(lines) and _RST_UNDERLINE.match(lines[i + 2]):
            _flush(paragraph, out, _RST_INLINE)
            out.append(("title", nxt.strip()))  # overlined title
            i += 3
            continue
        if line.strip() and _RST_UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()) and not paragraph:
            out.append(("title", line.strip()))
            i += 2
            continue
        if not line.strip() or _RST_DIRECTIVE.match(line.strip()) or _LIST_ITEM.match(line):
            _flush(paragraph, out, _RST_INLINE)
            if _LIST_ITEM.match(line):
                paragraph.append(line)
        else:
            paragraph.append(line)
        i += 1
    _flush(paragraph, out, _RST_INLINE)
    return _with_sections(out)


def org_blocks(text: str) -> list[Block]:
    out: list[tuple[str, str]] = []
    paragraph: list[str] = []
    table: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            _flush(paragraph, out, _ORG_INLINE)
            if not re.match(r"^\|[-+|\s]*$", stripped):
                table.append(" | ".join(cell.strip() for cell in stripped.strip("|").split("|")))
            continue
        if table:
            out.append(("table", "\n".join(table)))
            table = []
        headline = _ORG_HEADLINE.match(line)
        keyword = _ORG_KEYWORD.match(line)
        if headline and headline.group(2):
            _flush(paragraph, out, _ORG_INLINE)
            out.append(("title", _inline(headline.group(2), _ORG_INLINE)))
        elif keyword:
            _flush(paragraph, out, _ORG_INLINE)
            if keyword.group(1).upper() == "TITLE" and keyword.group(2).strip():
                out.append(("title", keyword.group(2).strip()))
        elif not stripped or _LIST_ITEM.match(line):
            _flush(paragraph, out, _ORG_INLINE)
            if stripped:
                paragraph.append(line)
        elif not stripped.startswith("# "):  # '# ' starts a comment line
            paragraph.append(line)
    _flush(paragraph, out, _ORG_INLINE)
    if table:
        out.append(("table", "\n".join(table)))
    return _with_sections(out)


def _flush(paragraph: list[str], out: list[tuple[str, str]], rules: list[tuple[re.Pattern[str], str]]) -> None:
    if paragraph:
        kind = "list" if _LIST_ITEM.match(paragraph[0]) else "text"
        first = _LIST_ITEM.sub("", paragraph[0], count=1) if kind == "list" else paragraph[0]
        text = _inline(" ".join([first, *paragraph[1:]]), rules)
        if text:
            out.append((kind, text))
        paragraph.clear()


def _with_sections(items: list[tuple[str, str]]) -> list[Block]:
    blocks: list[Block] = []
    section: str | None = None
    for kind, text in items:
        if kind == "title":
            section = text[:200]
        blocks.append(Block(text, None, section, kind))
    return blocks


def rtf_text(data: bytes) -> str:
    """Plain text of an RTF document, '\\'hh' escapes decoded in its declared code page."""
    from striprtf.striprtf import rtf_to_text

    raw = data.decode("latin-1")
    codepage = re.search(r"\\ansicpg(\d+)", raw[:4096])
    encoding = f"cp{codepage.group(1)}" if codepage else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    try:
        return rtf_to_text(raw, encoding=encoding, errors="replace")
    except (ValueError, IndexError, RecursionError) as exc:
        raise ParseError(f"corrupt RTF document: {type(exc).__name__}: {str(exc)[:200]}") from exc


# --- structured data ------------------------------------------------------------------------------


def xml_blocks(data: bytes) -> list[Block]:
    """One block per child of the root element: its leaf elements as `name: text` lines."""
    from ragkb.opendoc import safe_xml

    root = safe_xml(data)
    records = [child for child in root if isinstance(child.tag, str)] or [root]
    blocks: list[Block] = []
    if (root.text or "").strip():
        blocks.append(Block(" ".join(root.text.split()), None, None, "text"))
    for record in records:
        lines = list(_xml_lines(record))
        if lines:
            blocks.append(Block("\n".join(lines), None, None, "text"))
    return blocks


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_lines(element: Any) -> Iterator[str]:
    children = [child for child in element if isinstance(child.tag, str)]
    own = " ".join((element.text or "").split())
    if not children:
        text = " ".join("".join(element.itertext()).split())
        attrs = " ".join(f"{_local(k)}={v}" for k, v in element.attrib.items() if len(v) < 100)
        value = " ".join(part for part in (text, f"({attrs})" if attrs and not text else "") if part)
        if value:
            yield f"{_local(element.tag)}: {value}"
        return
    if own:
        yield f"{_local(element.tag)}: {own}"
    for child in children:
        yield from _xml_lines(child)
        tail = " ".join((child.tail or "").split())
        if tail:
            yield tail


def json_blocks(text: str) -> list[Block] | None:
    """Blocks of a JSON document or of JSON lines; None when the text is neither."""
    try:
        records = _records(json.loads(text))
    except (json.JSONDecodeError, RecursionError):
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (json.JSONDecodeError, RecursionError):
            return None
    blocks = []
    for record in records:
        lines = list(_json_lines(record, ""))
        if lines:
            blocks.append(Block("\n".join(lines), None, None, "text"))
    return blocks


def _records(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(value) > 1 and all(isinstance(v, (dict, list)) for v in value.values()):
        return [{key: item} for key, item in value.items()]
    return [value]


def _json_lines(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if value and all(not isinstance(item, (dict, list)) for item in value):
            yield f"{path}: {', '.join(_scalar(item) for item in value)}" if path else ", ".join(map(_scalar, value))
        else:
            for item in value:
                yield from _json_lines(item, path)
    elif value is not None and _scalar(value):
        yield f"{path}: {_scalar(value)}" if path else _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return " ".join(str(value).split())
