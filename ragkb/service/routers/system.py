"""Liveness, readiness, status and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ragkb.errors import AccessError
from ragkb.service.app import caller, context, error_body
from ragkb.service.auth import Caller
from ragkb.service.metrics import CONTENT_TYPE
from ragkb.status import collect_status

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: store open and models loaded")
def readyz(request: Request) -> Any:
    ctx = context(request)
    if ctx.ready.is_set():
        return {"status": "ready"}
    return JSONResponse(error_body("not_ready", ctx.not_ready_reason), status_code=503)


@router.get("/v1/status", summary="As `ragkb status --json`, plus the service's own state")
def status(request: Request, who: Caller = Depends(caller)) -> dict[str, Any]:
    ctx = context(request)
    info = collect_status(ctx.runtime)
    if not who.identity.is_admin:  # file paths and failure reasons are for admins
        info = {k: v for k, v in info.items() if k not in ("failed", "skipped", "warnings", "last_run", "home", "config_file", "qdrant")}
    info["service"] = {"uptime_s": round(time.time() - ctx.started_at, 1), "ready": ctx.ready.is_set(), "ingest_jobs_queued": ctx.jobs.pending()}
    return info


@router.get("/metrics", summary="Prometheus metrics (admin, or any caller in single-user mode)")
def metrics(request: Request, who: Caller = Depends(caller)) -> Response:
    if not who.identity.is_admin:
        raise AccessError("metrics are for the admin group")
    ctx = context(request)
    return Response(ctx.metrics.render(ctx.jobs.pending()), media_type=CONTENT_TYPE)
