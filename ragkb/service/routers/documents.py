"""Documents and ingest jobs: list (what the caller may read), upload, delete with a receipt,
the text around a cited passage, the original file, and ingest runs through the job queue.
Changing the base (upload, delete, ingest) is for admins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from ragkb import acl, documents
from ragkb.errors import AccessError, BadInput, NotFound
from ragkb.service.app import caller, context
from ragkb.service.auth import Caller
from ragkb.service.schemas import DeletionReceipt, DocumentsOut, ErrorOut, ForgetIn, IngestIn, JobAccepted, JobOut

router = APIRouter(prefix="/v1", responses={code: {"model": ErrorOut} for code in (401, 403, 404, 409, 413, 422, 503)})
# A deletion waits this long for a running ingest job to finish before answering 409.
DELETE_WAIT_S = 30.0


def _admin(who: Caller) -> None:
    if not who.identity.is_admin:
        raise AccessError("this needs the admin group")


@router.get("/documents", response_model=DocumentsOut, summary="Documents you may read (admins: all), with status and failure reasons")
def list_documents(request: Request, status: Literal["ok", "failed"] | None = None, who: Caller = Depends(caller)) -> Any:
    """Admins manage every document, so they see every path (not its content: search stays
    filtered by their groups); readers see the documents their groups may read."""
    groups = None if who.identity.is_admin else who.identity.acl_groups
    rows = documents.readable_rows(context(request).runtime, groups, status)
    return {"documents": [{"path": r.path, "doc_id": r.doc_id, "status": r.status, "chunks": r.chunks, "error": r.error, "updated_at": r.updated_at} for r in rows]}


@router.post("/documents", status_code=202, response_model=JobAccepted, summary="Upload files (admin): saved, then ingested by a queued job")
def upload(
    request: Request,
    files: list[UploadFile] = File(...),
    groups: str = Form(""),
    who: Caller = Depends(caller),
) -> Any:
    _admin(who)
    ctx = context(request)
    received = [(f.filename or "upload", f.file.read()) for f in files]
    saved = [str(path) for path in documents.save_uploads(ctx.settings, received, acl.parse_groups(groups) or None)]
    return {"job_id": ctx.jobs.submit(saved, kind="upload"), "paths": saved}


@router.delete("/documents/{doc_id}", response_model=DeletionReceipt, summary="Delete a document (admin); the receipt proves no point remains")
def delete(doc_id: str, request: Request, who: Caller = Depends(caller)) -> Any:
    _admin(who)
    ctx = context(request)
    with ctx.jobs.writer(DELETE_WAIT_S):
        receipt = documents.delete_document(ctx.runtime, doc_id)
    return receipt.__dict__


@router.post("/forget", summary="Remove a file, or every file under a folder, from the base (admin)")
def forget(body: ForgetIn, request: Request, who: Caller = Depends(caller)) -> dict[str, int]:
    _admin(who)
    ctx = context(request)
    with ctx.jobs.writer(DELETE_WAIT_S):
        removed = documents.forget(ctx.runtime, Path(body.path))
    if not removed:
        raise NotFound(f"{body.path} is not in the knowledge base")
    return {"removed": removed}


def _readable_doc(request: Request, who: Caller, doc_id: str) -> None:
    """NotFound both for a missing document and for one the caller may not read."""
    ctx = context(request)
    if not any(r.doc_id == doc_id for r in documents.readable_rows(ctx.runtime, who.identity.acl_groups, "ok")):
        raise NotFound(f"no document {doc_id}")


@router.get("/documents/{doc_id}/context", summary="The text just before and after a chunk (for a source preview)")
def passage_context(doc_id: str, request: Request, chunk_index: int = Query(ge=0), who: Caller = Depends(caller)) -> dict[str, str]:
    _readable_doc(request, who, doc_id)
    before, after = documents.context_around(context(request).runtime, doc_id, chunk_index)
    return {"before": before, "after": after}


@router.get("/file", summary="Download an ingested original you may read", response_class=FileResponse)
def original(request: Request, path: str = Query(min_length=1, max_length=4096), who: Caller = Depends(caller)) -> FileResponse:
    target = documents.readable_file(context(request).runtime, path, who.identity.acl_groups)
    return FileResponse(target, filename=target.name, content_disposition_type="attachment")


@router.post("/ingest", status_code=202, response_model=JobAccepted, summary="Start an ingest run (admin): given paths or the configured sources")
def start_ingest(request: Request, body: IngestIn | None = None, who: Caller = Depends(caller)) -> Any:
    _admin(who)
    ctx = context(request)
    paths = list(body.paths or []) if body else []
    if not paths and not ctx.settings.sources:
        raise BadInput("nothing to ingest: give paths or configure [[sources]] in ragkb.toml")
    return {"job_id": ctx.jobs.submit(paths), "paths": paths}


@router.get("/ingest/{job_id}", response_model=JobOut, summary="State, progress and, when done, the run summary (admin)")
def job(job_id: str, request: Request, who: Caller = Depends(caller)) -> Any:
    _admin(who)  # a summary names files a reader may not see
    found = context(request).jobs.job(job_id)
    if found is None:
        raise NotFound(f"no ingest job {job_id}")
    return found
