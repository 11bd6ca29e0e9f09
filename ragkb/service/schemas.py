"""Request and response bodies of the HTTP API. Requests forbid unknown fields (a typo in a
field name is a 422 that names it, not a silently ignored option); the OpenAI-compatible
request accepts the OpenAI parameters it does not use, as OpenAI clients send them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ragkb.answer import Citation
from ragkb.store.schema import Passage


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_nul(path: str) -> str:
    if "\x00" in path:  # no file system path holds one; os calls raise on it
        raise ValueError("a path cannot contain a NUL character")
    return path


# A file or folder path a caller names: checked here, so no path reaches the file system unusable.
PathIn = Annotated[str, Field(max_length=4096), AfterValidator(_no_nul)]


class FiltersIn(Strict):
    file_types: list[str] = Field(default_factory=list, max_length=32)
    folder: PathIn | None = None


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskIn(Strict):
    question: str = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, le=50)
    filters: FiltersIn | None = None
    history: list[Turn] = Field(default_factory=list, max_length=50)


class SearchIn(Strict):
    query: str = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, le=100)
    filters: FiltersIn | None = None
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"


class SearchOut(BaseModel):
    passages: list[Passage]


class AskOut(BaseModel):
    answer_id: str
    question: str
    answer: str
    citations: list[Citation]
    passages: list[Citation]
    backend: str
    timings_ms: dict[str, float]
    flagged: bool
    warnings: list[str]
    standalone_question: str | None = None
    backend_reason: str | None = None


class IngestIn(Strict):
    paths: list[PathIn] | None = Field(default=None, max_length=1000)


class ForgetIn(Strict):
    path: Annotated[PathIn, Field(min_length=1)]


class JobOut(BaseModel):
    job_id: str
    state: Literal["queued", "running", "done", "failed"]
    kind: str
    paths: list[str]
    progress: dict[str, Any]
    summary: dict[str, Any] | None = None
    error: str | None = None
    created_at: float
    finished_at: float | None = None


class JobAccepted(BaseModel):
    job_id: str
    paths: list[str] = Field(default_factory=list)


class DocumentOut(BaseModel):
    path: str
    doc_id: str | None
    status: Literal["ok", "failed"]
    chunks: int
    error: str | None
    updated_at: float


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class DeletionReceipt(BaseModel):
    doc_id: str
    paths: list[str]
    points_removed: int
    points_remaining: int


class FeedbackIn(Strict):
    answer_id: str = Field(min_length=1, max_length=64)
    rating: Literal[1, -1]
    comment: str | None = Field(default=None, max_length=4000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatIn(BaseModel):
    """OpenAI's chat request; parameters that make no sense for ragkb (temperature, ...) are
    accepted and ignored, as OpenAI clients send them."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
