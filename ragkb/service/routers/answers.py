"""Asking: /v1/ask (JSON or Server-Sent Events), /v1/search, the OpenAI-compatible
/v1/chat/completions and /v1/models, and /v1/feedback on an answer.

Every question is filtered by the caller's groups inside the Qdrant query (the Answerer passes
them into the filter) and audited with the caller's channel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from ragkb.answer import AnswerEvent, Answerer, AnswerResult
from ragkb.errors import BadInput, NotFound, RagkbError
from ragkb.questions import check_question
from ragkb.retrieve import Filters, Retriever
from ragkb.service.app import ServiceContext, caller, context, error_body
from ragkb.service.auth import Caller
from ragkb.service.schemas import AskIn, AskOut, ChatIn, ErrorOut, FeedbackIn, SearchIn, SearchOut

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", responses={code: {"model": ErrorOut} for code in (401, 403, 413, 422, 503)})


def _filters(body: AskIn | SearchIn) -> Filters | None:
    if body.filters is None:
        return None
    return Filters(tuple(body.filters.file_types), body.filters.folder)


def _record(ctx: ServiceContext, who: Caller, result: AnswerResult) -> dict[str, Any]:
    answer_id = uuid.uuid4().hex
    ctx.runtime.audit_answer(result, user=who.identity.name, channel=who.channel)
    ctx.state.add_answer(answer_id, who.identity.name, hashlib.sha256(result.question.encode()).hexdigest())
    return {"answer_id": answer_id, **result.to_dict()}


def _events(ctx: ServiceContext, who: Caller, body: AskIn) -> Iterator[AnswerEvent]:
    return Answerer(ctx.runtime).stream(
        body.question,
        groups=who.identity.acl_groups,
        top_k=body.top_k,
        filters=_filters(body),
        history=[turn.model_dump() for turn in body.history],
    )


@router.post("/ask", response_model=AskOut, summary="Answer a question with citations (JSON, or SSE with Accept: text/event-stream)")
def ask(body: AskIn, request: Request, who: Caller = Depends(caller)) -> Any:
    ctx = context(request)
    check_question(body.question, ctx.settings.max_question_chars)  # 413 before any streaming starts
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(_sse(ctx, who, body), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
    result = next(event.result for event in _events(ctx, who, body) if event.result is not None)
    return _record(ctx, who, result)


def _sse(ctx: ServiceContext, who: Caller, body: AskIn) -> Iterator[str]:
    """passages, then token*, then done (the AskOut object); an error after the stream started
    is an `error` event, since the status line has already been sent."""
    try:
        for event in _events(ctx, who, body):
            if event.kind == "passages":
                yield _event("passages", {"passages": [c.__dict__ for c in event.passages]})
            elif event.kind == "token":
                yield _event("token", {"text": event.text})
            elif event.result is not None:
                yield _event("done", _record(ctx, who, event.result))
    except RagkbError as exc:
        yield _event("error", error_body(exc.kind, str(exc)))
    except Exception:  # the status line is sent: say so in the stream, never just stop
        log.exception("unexpected error while streaming an answer")
        yield _event("error", error_body("internal", "internal error; the service log has the details"))


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.post("/search", response_model=SearchOut, summary="Passages only, no generation")
def search(body: SearchIn, request: Request, who: Caller = Depends(caller)) -> Any:
    ctx = context(request)
    retrieval = Retriever(ctx.runtime).retrieve(
        body.query, top_k=body.top_k, groups=who.identity.acl_groups, filters=_filters(body), mode=body.mode
    )
    return {"passages": [p.__dict__ for p in retrieval.passages]}


# --- OpenAI-compatible ---------------------------------------------------------------------------
def _model_ids(ctx: ServiceContext) -> list[str]:
    return list(dict.fromkeys(["ragkb", ctx.settings.collection]))


@router.get("/models", summary="OpenAI format: the knowledge bases this caller may query")
def models(request: Request, who: Caller = Depends(caller)) -> dict[str, Any]:
    ctx = context(request)
    created = int(ctx.started_at)
    return {"object": "list", "data": [{"id": m, "object": "model", "created": created, "owned_by": "ragkb"} for m in _model_ids(ctx)]}


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):  # OpenAI content parts: only text parts mean anything here
        return " ".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return content or ""


@router.post("/chat/completions", summary="OpenAI-compatible chat: the answer carries [n] markers and `citations`")
def chat_completions(body: ChatIn, request: Request, who: Caller = Depends(caller)) -> Any:
    ctx = context(request)
    if body.model not in _model_ids(ctx):
        raise NotFound(f"unknown model '{body.model}'; GET /v1/models lists them")
    turns = [(m.role, _text(m.content)) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise BadInput("the last message must come from the user")
    question = check_question(turns[-1][1], ctx.settings.max_question_chars)
    ask_body = AskIn(question=question, history=[{"role": r, "content": c[:20_000]} for r, c in turns[:-1][-50:]])
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        return StreamingResponse(_chat_stream(ctx, who, ask_body, body.model, completion_id, created), media_type="text/event-stream")
    result = next(event.result for event in _events(ctx, who, ask_body) if event.result is not None)
    record = _record(ctx, who, result)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": record["citations"],
        "answer_id": record["answer_id"],
    }


def _chat_stream(ctx: ServiceContext, who: Caller, body: AskIn, model: str, completion_id: str, created: int) -> Iterator[str]:
    """OpenAI chunks. Tokens stream as generated; since the citation check may still change the
    answer, the final chunk carries the checked answer's `citations` (and `answer_id`)."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
        return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    streamed = False
    try:
        for event in _events(ctx, who, body):
            if event.kind == "token" and event.text:
                streamed = True
                yield chunk({"content": event.text})
            elif event.result is not None:
                record = _record(ctx, who, event.result)
                if not streamed:
                    yield chunk({"content": event.result.answer})
                yield chunk({}, "stop", citations=record["citations"], answer_id=record["answer_id"])
    except RagkbError as exc:
        yield f"data: {json.dumps(error_body(exc.kind, str(exc)))}\n\n"
    except Exception:  # the status line is sent: say so in the stream, never just stop
        log.exception("unexpected error while streaming a chat completion")
        yield f"data: {json.dumps(error_body('internal', 'internal error; the service log has the details'))}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/feedback", status_code=204, summary="Rate an answer given to you")
def feedback(body: FeedbackIn, request: Request, who: Caller = Depends(caller)) -> Response:
    ctx = context(request)
    known, owner = ctx.state.answer_user(body.answer_id)
    if not known or (owner != who.identity.name and who.identity.groups is not None):
        raise NotFound(f"no answer {body.answer_id} was given to you")
    ctx.state.add_feedback(body.answer_id, who.identity.name, body.rating, body.comment)
    return Response(status_code=204)
