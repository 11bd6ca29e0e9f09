"""The FastAPI application: one process owns the knowledge base (store, models, audit log,
ingest queue) and serves the UI, the portal and the nightly job over HTTP.

Errors are mapped here, once: a `RagkbError` becomes its own HTTP status with
`{"error": {"type", "message"}}`; malformed requests become 422 with the offending fields; an
unexpected exception becomes a 500 with no traceback (it is logged). There is no docs page:
FastAPI's pulls Swagger UI from a CDN, and nothing the service serves may make a browser fetch
an outside address; the schema is at /openapi.json.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragkb.config import Settings
from ragkb.errors import RagkbError
from ragkb.runtime import Runtime
from ragkb.service.auth import Caller, ServiceAuth
from ragkb.service.jobs import IngestQueue
from ragkb.service.metrics import Metrics
from ragkb.service.state import ServiceState

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    settings: Settings
    runtime: Runtime
    state: ServiceState
    jobs: IngestQueue
    auth: ServiceAuth
    metrics: Metrics
    local_token: str
    started_at: float = field(default_factory=time.time)
    ready: threading.Event = field(default_factory=threading.Event)
    not_ready_reason: str = "starting: opening the store and loading the models"


def context(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller of this request (401/403 otherwise)."""
    return context(request).auth.caller(request.headers)


def create_app(settings: Settings, local_token: str | None = None, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings, store_wait_s=settings.store_wait_s)
    token = local_token or secrets.token_urlsafe(32)
    state = ServiceState(settings.home / "service.sqlite")
    metrics = Metrics()
    ctx = ServiceContext(settings, runtime, state, IngestQueue(runtime, state, metrics.record_ingest), ServiceAuth(settings, token), metrics, token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_warm_up, args=(ctx,), name="ragkb-warm-up", daemon=True).start()
        ctx.jobs.start()
        yield
        ctx.jobs.stop()
        runtime.close()
        state.close()

    app = FastAPI(
        title="ragkb",
        version="1",
        description="Private knowledge base: cited answers from your documents, filtered by your groups.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    _error_handlers(app)
    metrics.install(app)
    from ragkb.service.routers import answers, documents, system

    for router in (answers.router, documents.router, system.router):
        app.include_router(router)
    return app


def _warm_up(ctx: ServiceContext) -> None:
    """Open the store and load the embedder before the first question, and say when ready."""
    try:
        _ = ctx.runtime.store, ctx.runtime.manifest, ctx.runtime.embedder, ctx.runtime.generator
    except RagkbError as exc:
        ctx.not_ready_reason = str(exc)
        log.error("not ready: %s", exc)
        return
    ctx.ready.set()


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagkbError)
    async def ragkb_error(request: Request, exc: RagkbError) -> JSONResponse:
        return JSONResponse(error_body(exc.kind, str(exc)), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors())
        return JSONResponse(error_body("bad_input", problems or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal error; the service log has the details"), status_code=500)
