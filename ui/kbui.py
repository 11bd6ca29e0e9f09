"""What the Streamlit pages share: settings, the process-wide resources, sign-in, and the small
pure helpers (labels, passage context, upload paths) that the pages and the tests use.

Embedded Qdrant allows one client per folder per process, and Streamlit runs every browser
session as a thread of one process, so the Store, the embedding model and the LLM backend are
created once per process with `st.cache_resource` and shared by all sessions and pages. The
store's client is wrapped in a lock: qdrant-client's local mode is plain Python and not safe
for a query racing an upsert from the admin page.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from qdrant_client import models

from ragkb import acl as acl_rules
from ragkb import manifest as mf
from ragkb.access import AccessError, authenticate, get_user, users_configured
from ragkb.answer import Answerer, Citation
from ragkb.config import Settings
from ragkb.ingest import Ingestor
from ragkb.llm import Generator, backend_report, resolve_backend
from ragkb.models import Embedder, load_embedder
from ragkb.parse import SUPPORTED_SUFFIXES, document_type
from ragkb.retrieve import Retriever
from ragkb.store import Store, open_client

# Document types as ingest stores them in the `file_type` payload (ragkb.parse).
DOC_TYPES = ("pdf", "docx", "pptx", "html", "md", "text", "email")
UPLOAD_SUFFIXES = sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES)
ADMIN_GROUP = "admin"
# Seconds a resolved LLM backend is reused: `auto` probes Ollama, and a server started after
# the UI should be picked up without a restart.
BACKEND_TTL_S = 60


# --- settings and shared resources -------------------------------------------------------------
def load_settings() -> Settings:
    """Fresh each script run: cheap, and tests change RAGKB_* between apps in one process."""
    return Settings()


def store_key(settings: Settings) -> str:
    return f"{settings.qdrant_url or settings.qdrant_path}|{settings.collection}"


def _llm_key(settings: Settings) -> str:
    return settings.model_dump_json(
        include={"llm_backend", "ollama_url", "llm_model", "openai_url", "gguf_path", "llm_timeout_s", "max_answer_tokens", "home"}
    )


class _LockedClient:
    """Every call on the Qdrant client holds one process-wide lock."""

    def __init__(self, client: Any, lock: threading.RLock) -> None:
        self._client = client
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


class SharedStore(Store):
    """The process's one Store. Ingestor.close() closes the store it was given, so `close` is a
    no-op here; `release` really closes it (cache eviction, end of a test)."""

    def __init__(self, settings: Settings) -> None:
        self._raw_client = open_client(settings)
        super().__init__(settings, client=_LockedClient(self._raw_client, threading.RLock()))

    def close(self) -> None:
        pass

    def release(self) -> None:
        self._raw_client.close()


def _release(value: Any) -> None:
    if isinstance(value, SharedStore):
        value.release()


@st.cache_resource(show_spinner="Opening the knowledge base…", on_release=_release)
def _shared_store(key: str, _settings: Settings) -> SharedStore:
    return SharedStore(_settings)


@st.cache_resource(show_spinner="Loading the embedding model…")
def _shared_embedder(key: str, _settings: Settings) -> Embedder:
    return load_embedder(_settings)


@st.cache_resource(show_spinner=False, ttl=BACKEND_TTL_S)
def _shared_generator(key: str, _settings: Settings) -> Generator:
    return resolve_backend(_settings)


@st.cache_data(show_spinner=False, ttl=BACKEND_TTL_S)
def cached_backend_report(key: str, _settings: Settings) -> dict[str, str]:
    return backend_report(_settings)


def shared_store(settings: Settings) -> SharedStore:
    return _shared_store(store_key(settings), settings)


def shared_embedder(settings: Settings) -> Embedder:
    return _shared_embedder(f"{settings.embed_model}|{settings.query_prefix}", settings)


def answerer(settings: Settings) -> Answerer:
    """Cheap to build; what is expensive inside it is shared."""
    retriever = Retriever(settings, store=shared_store(settings), embedder=shared_embedder(settings))
    return Answerer(settings, retriever=retriever, generator=_shared_generator(_llm_key(settings), settings))


def backend_info(settings: Settings) -> dict[str, str]:
    return cached_backend_report(_llm_key(settings), settings)


def ingestor(settings: Settings) -> Ingestor:
    """A new Ingestor (its SQLite manifest belongs to this thread) over the shared store."""
    return Ingestor(settings, store=shared_store(settings), embedder=shared_embedder(settings))


# --- who is asking -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    name: str | None  # None: anonymous single-user mode
    groups: tuple[str, ...] | None  # None: no ACL filter
    via: str  # anonymous | password | header

    @property
    def acl_groups(self) -> list[str] | None:
        return None if self.groups is None else list(self.groups)

    @property
    def is_admin(self) -> bool:
        return self.groups is None or ADMIN_GROUP in self.groups


ANONYMOUS = Identity(None, None, "anonymous")


def auth_mode(settings: Settings) -> str:
    if settings.trusted_user_header:
        return "header"
    return "password" if users_configured(settings) else "anonymous"


def identity_from_header(settings: Settings, headers: Any) -> Identity:
    """SSO behind a reverse proxy: the proxy authenticates and names the user in a header;
    groups still come only from the users file. Raises AccessError when the header is missing
    or names nobody we know."""
    header = settings.trusted_user_header or ""
    name = (headers.get(header) if headers is not None else None) or ""
    name = name.strip()
    if not name:
        raise AccessError(f"the request carries no {header} header: open the app through the sign-in proxy")
    user = get_user(settings, name)
    return Identity(user.name, user.groups, "header")


def identity_from_password(settings: Settings, name: str, password: str) -> Identity:
    user = authenticate(settings, name.strip(), password)
    return Identity(user.name, user.groups, "password")


def identity_from_stored(settings: Settings, signed_in: Identity) -> Identity:
    """A signed-in session keeps its name; its groups are read from the users file again."""
    if signed_in.name is None:
        raise AccessError("please sign in again")
    try:
        user = get_user(settings, signed_in.name)
    except AccessError:
        raise AccessError(f"user '{signed_in.name}' no longer exists: please sign in again") from None
    return Identity(user.name, user.groups, signed_in.via)


_CONTEXT = "_ragkb_context"


def set_context(settings: Settings, identity: Identity) -> None:
    """app.py decides settings and identity once per run; the page scripts read them here."""
    st.session_state[_CONTEXT] = (settings, identity)


def context() -> tuple[Settings, Identity]:
    value = st.session_state.get(_CONTEXT)
    if value is None:
        st.error("Open the app through ui/app.py (`ragkb ui`), not a page file.")
        st.stop()
    return value


# --- manifest views ----------------------------------------------------------------------------
def manifest_rows(settings: Settings) -> list[mf.SourceRow]:
    if not settings.manifest_path().exists():
        return []
    manifest = mf.Manifest(settings.manifest_path())
    try:
        return manifest.sources()
    finally:
        manifest.close()


def readable_rows(rows: list[mf.SourceRow], identity: Identity, settings: Settings) -> list[mf.SourceRow]:
    return [r for r in rows if r.status == mf.OK and acl_rules.may_read(identity.acl_groups, r.acl, settings)]


def folders(rows: list[mf.SourceRow]) -> list[str]:
    """Folders holding ingested files, with their ancestors up to the common root."""
    parents = {Path(r.path).parent for r in rows}
    if not parents:
        return []
    common = Path(os.path.commonpath([str(p) for p in parents]))
    seen: set[str] = set()
    for parent in parents:
        current = parent
        while True:
            seen.add(str(current))
            if current == common or current == current.parent or not current.is_relative_to(common):
                break
            current = current.parent
    return sorted(seen)


def may_download(path: str, identity: Identity, settings: Settings, rows: list[mf.SourceRow]) -> bool:
    """Only an ingested file this user may read, that is still on disk."""
    row = next((r for r in rows if r.path == path), None)
    if row is None or row.status != mf.OK:
        return False
    if not acl_rules.may_read(identity.acl_groups, row.acl, settings):
        return False
    return Path(path).is_file()


# --- citations ---------------------------------------------------------------------------------
def citation_label(c: Citation, width: int = 28) -> str:
    name = Path(c.source).name or "(unknown)"
    if len(name) > width:
        name = name[: width - 1] + "…"
    where = f" p.{c.page}" if c.page is not None else (f" · {_short(c.section, 24)}" if c.section else "")
    return f"[{c.n}] {name}{where}"


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def location(c: Citation) -> str:
    parts = []
    if c.page is not None:
        parts.append(f"page {c.page}")
    if c.section:
        parts.append(f"section “{_short(c.section, 80)}”")
    return ", ".join(parts) or "no page or section recorded"


_MD_IMAGE = re.compile(r"!\[")


def safe_markdown(text: str) -> str:
    """Model output and document text are untrusted: a markdown image would make the browser
    fetch a URL (an exfiltration channel), and `$` pairs would render as LaTeX."""
    return _MD_IMAGE.sub(r"!\\[", text).replace("$", r"\$")


def _tokens(text: str) -> list[str]:
    """Words with their trailing whitespace, so a cut keeps the original line breaks."""
    return re.findall(r"\S+\s*", text)


def _same(a: list[str], b: list[str]) -> bool:
    return [t.strip() for t in a] == [t.strip() for t in b]


def _strip_overlap(before: str, passage: str, after: str, max_words: int = 80) -> tuple[str, str]:
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
def neighbours(key: str, doc_id: str, text: str, _store: Store) -> tuple[str, str]:
    """Text of the chunks just before and after the cited one in the same document."""
    if not doc_id:
        return "", ""
    query = models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))])
    chunks = sorted(
        (int(hit.payload.get("chunk_index", 0)), str(hit.payload.get("text", "")))
        for hit in _store.scroll(query, fields=["chunk_index", "text"])
    )
    for i, (_, chunk_text) in enumerate(chunks):
        if chunk_text == text:
            before = chunks[i - 1][1] if i > 0 else ""
            after = chunks[i + 1][1] if i + 1 < len(chunks) else ""
            return _strip_overlap(before, text, after)
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


# --- uploads -----------------------------------------------------------------------------------
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def upload_dir(settings: Settings) -> Path:
    return settings.home / "uploads"


def safe_filename(name: str) -> str:
    """A browser-supplied name becomes one plain file name inside the uploads folder."""
    base = Path(name.replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if not base:
        raise ValueError(f"unusable file name {name!r}")
    return base


def save_upload(settings: Settings, name: str, data: bytes, groups: list[str] | None = None) -> Path:
    """Write an uploaded file under RAGKB_HOME/uploads (atomically), with an ACL sidecar when
    groups are given; returns its path."""
    folder = upload_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_filename(name)
    if target.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{target.name}: unsupported file type (supported: {', '.join(UPLOAD_SUFFIXES)})")
    tmp = target.with_name(f".{target.name}.{time.time_ns()}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    sidecar = target.with_name(target.name + acl_rules.SIDECAR_SUFFIX)
    if groups:
        sidecar.write_text(",".join(sorted(set(groups))) + "\n", encoding="utf-8")
    elif sidecar.exists():
        sidecar.unlink()
    return target


def parse_groups(text: str) -> list[str]:
    return sorted({g.strip() for g in re.split(r"[,\s]+", text) if g.strip()})


def remove_upload(settings: Settings, path: str) -> bool:
    """After forgetting an uploaded file, its copy under uploads/ goes too (nothing else would
    ever remove it). Files elsewhere are the owner's and stay."""
    target = Path(path)
    if not target.is_relative_to(upload_dir(settings).resolve()):
        return False
    removed = False
    for candidate in (target, target.with_name(target.name + acl_rules.SIDECAR_SUFFIX)):
        if candidate.is_file():
            candidate.unlink()
            removed = True
    return removed


def fmt_time(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def fmt_ago(epoch: Any, now: float | None = None) -> str:
    if not isinstance(epoch, (int, float)):
        return "—"
    seconds = max(0.0, (time.time() if now is None else now) - epoch)
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''} ago"
    return "just now"
