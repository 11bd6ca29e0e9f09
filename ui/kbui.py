"""What the pages share: this run's settings, the process's one `Runtime`, who is signed in,
and the manifest as this user may see it.

Streamlit runs every browser session as a thread of one process, and the embedded Qdrant
folder can be open in one process only, so the Runtime (store, models, manifest) is created
once per process with `st.cache_resource` and shared by all sessions and pages; it closes
when the cache drops it. Each run derives a cheap view of it with that run's settings
(`Runtime.derive`), and the LLM backend is re-resolved every BACKEND_TTL_S seconds so a
server started after the UI is picked up without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from ragkb import acl
from ragkb.answer import Answerer
from ragkb.config import Settings
from ragkb.ingest import manifest as mf
from ragkb.llm import Generator, backend_report, resolve_backend
from ragkb.runtime import Runtime
from ragkb.users import Identity

# Document types as ingest stores them in the `file_type` payload (ragkb.parse).
DOC_TYPES = ("pdf", "docx", "pptx", "html", "md", "text", "email")
BACKEND_TTL_S = 60
# What the shared Runtime is built from: another value needs another Runtime (and the old one
# closed first, hence max_entries=1: the embedded store can be open once per process).
_RUNTIME_FIELDS = {"home", "collection", "qdrant_url", "embed_model", "query_prefix", "reranker_model"}
_LLM_FIELDS = {
    "llm_backend", "ollama_url", "llm_model", "openai_url", "gguf_path", "llm_timeout_s", "max_answer_tokens", "home"
}  # fmt: skip


def load_settings() -> Settings:
    """Fresh each script run: cheap, and tests change RAGKB_* between apps in one process."""
    return Settings()


def _key(settings: Settings, fields: set[str]) -> str:
    return settings.model_dump_json(include=fields)


def _close(runtime: Runtime) -> None:
    runtime.close()


@st.cache_resource(show_spinner=False, max_entries=1, on_release=_close)
def _shared_runtime(key: str, _settings: Settings) -> Runtime:
    return Runtime(_settings)  # lazy: nothing is opened or loaded until a page uses it


@st.cache_resource(show_spinner=False, ttl=BACKEND_TTL_S)
def _generator(key: str, _settings: Settings) -> Generator:
    return resolve_backend(_settings)


@st.cache_data(show_spinner=False, ttl=BACKEND_TTL_S)
def _backend_report(key: str, _settings: Settings) -> dict[str, str]:
    return backend_report(_settings)


def runtime_key(settings: Settings) -> str:
    return _key(settings, _RUNTIME_FIELDS)


def runtime(settings: Settings) -> Runtime:
    """This run's view of the shared Runtime (closing it closes nothing)."""
    return _shared_runtime(runtime_key(settings), settings).derive(settings)


def answerer(settings: Settings) -> Answerer:
    shared = _shared_runtime(runtime_key(settings), settings)
    return Answerer(shared.derive(settings, generator=_generator(_key(settings, _LLM_FIELDS), settings)))


def backend_info(settings: Settings) -> dict[str, str]:
    return _backend_report(_key(settings, _LLM_FIELDS), settings)


# --- who is asking -----------------------------------------------------------------------------
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


# --- the manifest as this user may see it ------------------------------------------------------
def readable_rows(rows: list[mf.SourceRow], identity: Identity, settings: Settings) -> list[mf.SourceRow]:
    return [r for r in rows if r.status == mf.OK and acl.may_read(identity.acl_groups, r.acl, settings)]


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
    if not acl.may_read(identity.acl_groups, row.acl, settings):
        return False
    return Path(path).is_file()
