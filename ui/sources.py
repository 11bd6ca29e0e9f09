"""Citations on the chat page: chip labels, where a passage sits, its neighbouring text, the
highlighted preview and the original file's download.

A citation is the API's JSON object (`n`, `source`, `page`, `page_label`, `section`, `text`, `score`,
`doc_id`, `chunk_index`, `file_type`, ...). The text around it and the original file come from
the service, which checks that the user may read them. Labels and locations are built from
document-derived strings (file names, section titles, email subjects) and returned as Markdown,
already escaped with `markup.md`; the preview is HTML with every piece escaped.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import streamlit as st

from ragkb.client import ServiceClient
from ragkb.errors import NotFound, RagkbError
from ragkb.pageref import page_reference, short_page
from ui.markup import md

log = logging.getLogger("ragkb.ui")
Citation = dict[str, Any]


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def file_name(c: Citation) -> str:
    """The cited file's name (raw: escape it before putting it into Markdown)."""
    return PurePath(str(c.get("source") or "")).name or "(unknown file)"


def citation_label(c: Citation, width: int = 28) -> str:
    """Markdown for a citation chip: `[n] name p.3` or `[n] name · section`."""
    name = _short(PurePath(str(c.get("source") or "")).name or "(unknown)", width)
    page, section = short_page(c.get("page"), c.get("page_label")), c.get("section")
    where = f" {page}" if page else (f" · {_short(section, 24)}" if section else "")
    return md(f"[{c['n']}] {name}{where}")


def location(c: Citation) -> str:
    """Markdown: where in its file the passage is."""
    parts = []
    page = page_reference(c.get("page"), c.get("page_label"))
    if page:
        parts.append(page)
    if c.get("section"):
        parts.append(f"section “{_short(c['section'], 80)}”")
    if c.get("ocr"):
        parts.append("text recognised by OCR from a scan: check it against the original")
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


@st.cache_data(show_spinner=False, ttl=300, max_entries=256)
def _around(url: str, user: str | None, doc_id: str, chunk_index: int, _client: ServiceClient) -> tuple[str, str]:
    return _client.context(doc_id, chunk_index)


def neighbours(client: ServiceClient, user: str | None, c: Citation) -> tuple[str, str]:
    """Text of the chunks just before and after the cited one, overlap removed; none when the
    service cannot give it (the passage alone is still worth showing)."""
    if not c.get("doc_id") or c.get("chunk_index") is None:
        return "", ""
    try:
        before, after = _around(client.url, user, str(c["doc_id"]), int(c["chunk_index"]), client)
    except RagkbError as exc:
        log.warning("could not load the text around a cited passage: %s", exc)
        return "", ""
    return strip_overlap(before, str(c.get("text") or ""), after)


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


def available(client: ServiceClient, path: str) -> bool:
    """The original is still there and this user may download it (the service decides)."""
    try:
        return client.file_available(path)
    except NotFound:
        return False
    except RagkbError as exc:
        log.warning("could not check the original file: %s", exc)
        return False


def file_reader(client: ServiceClient, path: str) -> Callable[[], bytes]:
    """Fetched only when the user clicks download, not on every rerun."""
    return lambda: client.file(path)


MIME = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
    "md": "text/markdown",
    "text": "text/plain",
    "email": "message/rfc822",
}


def mime_type(c: Citation) -> str:
    return MIME.get(str(c.get("file_type") or ""), "application/octet-stream")
