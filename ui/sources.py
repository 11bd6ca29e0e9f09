"""Citations on the chat page: chip labels, where a passage sits, its neighbouring text, the
highlighted preview and the original file's download.

Labels and locations are built from document-derived strings (file names, section titles,
email subjects) and returned as Markdown, already escaped with `markup.md`; the preview is
HTML with every piece escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from ragkb.answer import Citation
from ragkb.parse import document_type
from ragkb.runtime import Runtime
from ragkb.store.schema import CHUNK_INDEX, TEXT, doc_filter
from ui.markup import md


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def file_name(c: Citation) -> str:
    """The cited file's name (raw: escape it before putting it into Markdown)."""
    return Path(c.source).name or "(unknown file)"


def citation_label(c: Citation, width: int = 28) -> str:
    """Markdown for a citation chip: `[n] name p.3` or `[n] name · section`."""
    name = _short(Path(c.source).name or "(unknown)", width)
    where = f" p.{c.page}" if c.page is not None else (f" · {_short(c.section, 24)}" if c.section else "")
    return md(f"[{c.n}] {name}{where}")


def location(c: Citation) -> str:
    """Markdown: where in its file the passage is."""
    parts = []
    if c.page is not None:
        parts.append(f"page {c.page}")
    if c.section:
        parts.append(f"section “{_short(c.section, 80)}”")
    return md(", ".join(parts) or "no page or section recorded")


def _tokens(text: str) -> list[str]:
    """Words with their trailing whitespace, so a cut keeps the original line breaks."""
    return re.findall(r"\S+\s*", text)


def _same(a: list[str], b: list[str]) -> bool:
    return [t.strip() for t in a] == [t.strip() for t in b]


def strip_overlap(before: str, passage: str, after: str, max_words: int = 80) -> tuple[str, str]:
    """Adjacent chunks overlap by a few words; show each word once, and a bounded window."""
    p, b, a = _tokens(passage), _tokens(before), _tokens(after)
    for k in range(min(len(b), len(p), 120), 0, -1):
        if _same(b[-k:], p[:k]):
            b = b[:-k]
            break
    for k in range(min(len(a), len(p), 120), 0, -1):
        if _same(a[:k], p[-k:]):
            a = a[k:]
            break
    b_text = ("… " if len(b) > max_words else "") + "".join(b[-max_words:]).rstrip()
    a_text = "".join(a[:max_words]).rstrip() + (" …" if len(a) > max_words else "")
    return b_text, a_text


@st.cache_data(show_spinner=False, ttl=300, max_entries=64)
def neighbours(key: str, doc_id: str, text: str, _runtime: Runtime) -> tuple[str, str]:
    """Text of the chunks just before and after the cited one in the same document (`key`
    names the knowledge base, so two bases never share an entry)."""
    if not doc_id:
        return "", ""
    chunks = sorted(
        (int(hit.payload.get(CHUNK_INDEX, 0)), str(hit.payload.get(TEXT, "")))
        for hit in _runtime.store.scroll(doc_filter(doc_id), fields=[CHUNK_INDEX, TEXT])
    )
    for i, (_, chunk_text) in enumerate(chunks):
        if chunk_text == text:
            before = chunks[i - 1][1] if i > 0 else ""
            after = chunks[i + 1][1] if i + 1 < len(chunks) else ""
            return strip_overlap(before, text, after)
    return "", ""


def highlighted_html(passage: str, before: str = "", after: str = "") -> str:
    """The cited passage marked inside its surrounding text; everything escaped."""
    parts = ['<div class="ragkb-source" style="white-space:pre-wrap;line-height:1.55">']
    if before:
        parts.append(f'<span style="opacity:.7">{html.escape(before)}</span>\n')
    parts.append(f'<mark style="background:#fde68a;padding:0 .1em">{html.escape(passage)}</mark>')
    if after:
        parts.append(f'\n<span style="opacity:.7">{html.escape(after)}</span>')
    parts.append("</div>")
    return "".join(parts)


def file_reader(path: str) -> Callable[[], bytes]:
    """Read only when the user clicks download, not on every rerun."""
    return lambda: Path(path).read_bytes()


MIME = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
    "md": "text/markdown",
    "text": "text/plain",
    "email": "message/rfc822",
}


def mime_type(path: str) -> str:
    return MIME.get(document_type(Path(path)) or "", "application/octet-stream")
