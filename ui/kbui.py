"""What the pages share: this run's settings, the ragkb service the UI talks to, who is signed
in, and the reads from the service that several pages need.

The UI never opens the knowledge base. `ragkb serve` owns the store, the models, the audit log
and the ingest queue, and starts this UI with RAGKB_SERVICE_URL and RAGKB_SERVICE_TOKEN (its
local token, which may act as any user the UI names). Started on its own (`ragkb ui`), the UI
finds the live service of the same RAGKB_HOME through RAGKB_HOME/service.json. With no service
there is no UI, only a page that says to start `ragkb serve`: never an in-process fallback.

Every call names the signed-in user (the service checks they exist and applies their groups in
the Qdrant query) and the channel `ui` (the service's audit log records both); in single-user
mode no user is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, NoReturn

import httpx
import streamlit as st

from ragkb.client import ServiceClient
from ragkb.config import Settings
from ragkb.errors import RagkbError, StoreError
from ragkb.service import discovery
from ragkb.service.run import SERVICE_TOKEN_ENV, SERVICE_URL_ENV
from ragkb.users import Identity
from ui.markup import md

STATUS_TTL_S = 60  # the answer backend (and why) is re-read this often: a new server shows up
HISTORY_MESSAGES = 20  # earlier turns sent with a question, so follow-ups are understood


@dataclass(frozen=True)
class Service:
    url: str
    token: str


@dataclass(frozen=True)
class Context:
    settings: Settings
    identity: Identity
    service: Service
    client: ServiceClient


def load_settings() -> Settings:
    """Fresh each script run: cheap, and tests change RAGKB_* between apps in one process."""
    return Settings()


def find_service(settings: Settings) -> Service | None:
    """The service `ragkb serve` started this UI for, else the live one of this RAGKB_HOME."""
    url, token = os.environ.get(SERVICE_URL_ENV, "").strip(), os.environ.get(SERVICE_TOKEN_ENV, "").strip()
    if url and token:
        return Service(url.rstrip("/"), token)
    info = discovery.running(settings)
    return Service(info.url, info.token) if info is not None else None


def no_service_page(settings: Settings, service: Service | None = None) -> NoReturn:
    if service is None:
        problem = f"No ragkb service is running for {md(settings.home)}."
    else:
        problem = f"The ragkb service at {md(service.url)} does not answer."
    st.error(
        f"{problem} The UI only talks to the service, which owns the knowledge base: "
        "start it with `ragkb serve` (it starts this UI too), then reload this page."
    )
    st.stop()


def service_answers(service: Service) -> bool:
    try:
        return httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_on(exc: RagkbError, doing: str) -> NoReturn:
    """A call the page cannot do without failed: say why (a stopped service: how to start it)."""
    ctx = context()
    if isinstance(exc, StoreError) and not service_answers(ctx.service):
        no_service_page(ctx.settings, ctx.service)
    st.error(f"{md(doing)}: {md(exc)}")
    st.stop()


def _close(client: ServiceClient) -> None:
    client.close()


@st.cache_resource(show_spinner=False, max_entries=64, on_release=_close)
def _client(url: str, token: str, user: str | None) -> ServiceClient:
    return ServiceClient(url, token, user=user, channel="ui")


def client_for(service: Service, identity: Identity) -> ServiceClient:
    """One HTTP client per service and user, shared by that user's sessions (it is thread-safe)."""
    return _client(service.url, service.token, identity.name)


@st.cache_data(show_spinner=False, ttl=STATUS_TTL_S)
def _status(url: str, user: str | None, _client: ServiceClient) -> dict[str, Any]:
    return _client.status()


def cached_status(ctx: Context) -> dict[str, Any]:
    """`GET /v1/status`, at most STATUS_TTL_S seconds old (for the backend and its reason)."""
    return _status(ctx.service.url, ctx.identity.name, ctx.client)


def backend_reason(ctx: Context, backend: str) -> str | None:
    """Why `backend` answers, if it is the one the service currently chooses."""
    try:
        llm = cached_status(ctx).get("llm") or {}
    except RagkbError:
        return None
    return str(llm.get("reason")) if llm.get("backend") == backend and llm.get("reason") else None


# --- who is asking -----------------------------------------------------------------------------
_CONTEXT = "_ragkb_context"


def set_context(ctx: Context) -> None:
    """app.py decides settings, identity and service once per run; the page scripts read them here."""
    st.session_state[_CONTEXT] = ctx


def context() -> Context:
    value = st.session_state.get(_CONTEXT)
    if value is None:
        st.error("Open the app through ui/app.py (`ragkb serve` or `ragkb ui`), not a page file.")
        st.stop()
    return value  # type: ignore[no-any-return]


# --- questions and documents -------------------------------------------------------------------
def history(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation so far as the API takes it: each question with its answer (a failed one
    is left out), the latest HISTORY_MESSAGES turns."""
    turns: list[dict[str, str]] = []
    for asked, answered in zip(messages[::2], messages[1::2]):
        result = answered.get("result")
        if asked.get("role") == "user" and result is not None:
            turns += [{"role": "user", "content": asked["content"]}, {"role": "assistant", "content": str(result.get("answer", ""))}]
    return [{"role": t["role"], "content": t["content"][:20_000]} for t in turns[-HISTORY_MESSAGES:]]


def folders(paths: list[str]) -> list[str]:
    """Folders holding the given files, with their ancestors up to the common root."""
    parents = {PurePath(p).parent for p in paths}
    if not parents:
        return []
    common = PurePath(os.path.commonpath([str(p) for p in parents]))
    seen: set[str] = set()
    for parent in parents:
        current = parent
        while True:
            seen.add(str(current))
            if current == common or current == current.parent or not current.is_relative_to(common):
                break
            current = current.parent
    return sorted(seen)
