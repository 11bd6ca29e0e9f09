"""The tamper-evident audit log: one JSONL record per answered question, each carrying the
hash of the one before, so an edited or deleted line breaks the chain."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragkb.config import Settings
from ragkb.errors import ConfigError

if TYPE_CHECKING:
    from ragkb.answer import AnswerResult

_GENESIS = "0" * 64
_BLOCK = 65536


def _record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _last_hash(handle: Any) -> str:
    """The hash of the last record, however long it is: read backwards block by block until
    the line before it ends (a question may be any length the limits allowed when written)."""
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    tail = b""
    position = end
    while position > 0:
        step = min(position, _BLOCK)
        position -= step
        handle.seek(position)
        tail = handle.read(step) + tail
        body = tail.rstrip(b"\n")
        if b"\n" in body or position == 0:
            last = body.rsplit(b"\n", 1)[-1]
            if not last.strip():
                return _GENESIS
            try:
                return json.loads(last.decode("utf-8"))["hash"]
            except (ValueError, KeyError) as exc:
                raise ConfigError(
                    "the audit log ends with a damaged record; run `ragkb audit verify`"
                ) from exc
    return _GENESIS


def audit(
    settings: Settings,
    *,
    user: str | None,
    question: str,
    doc_ids: list[str],
    sources: list[str],
    backend: str,
    channel: str,
    flagged: bool = False,
) -> dict[str, Any]:
    """Append one record; the file lock makes read-last-hash + append atomic across processes."""
    path = settings.audit_log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": user or "anonymous",
        "channel": channel,
        "backend": backend,
        "doc_ids": doc_ids,
        "sources": sources,
        "flagged": flagged,
    }
    if settings.audit_redact_questions:
        record["question_sha256"] = hashlib.sha256(question.encode("utf-8")).hexdigest()
    else:
        record["question"] = question
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "rb+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        record["prev"] = _last_hash(handle)
        record["hash"] = _record_hash(record)
        handle.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return record


def audit_answer(settings: Settings, result: AnswerResult, *, user: str | None, channel: str) -> dict[str, Any]:
    """The record every channel (CLI, UI) writes for an answered question."""
    return audit(
        settings,
        user=user,
        question=result.question,
        doc_ids=[c.doc_id for c in result.passages],
        sources=[c.source for c in result.passages],
        backend=result.backend,
        channel=channel,
        flagged=result.flagged,
    )


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    records: int
    problem: str | None = None


def verify_audit(settings: Settings) -> AuditCheck:
    path = settings.audit_log_path
    if not path.exists():
        return AuditCheck(True, 0)
    prev = _GENESIS
    count = 0
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return AuditCheck(False, count, f"line {line_no}: not valid JSON")
            if record.get("prev") != prev:
                return AuditCheck(False, count, f"line {line_no}: chain broken (a record before it was removed or changed)")
            if _record_hash(record) != record.get("hash"):
                return AuditCheck(False, count, f"line {line_no}: record was modified")
            prev = record["hash"]
            count += 1
    return AuditCheck(True, count)
