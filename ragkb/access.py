"""Users, groups and the tamper-evident audit log.

Users live in a local TOML file with argon2 password hashes; the file is the only source of a
user's groups, whichever way they authenticated (password in the UI, --user on the CLI, or a
trusted reverse-proxy header). Every answered question is appended to a JSONL log in which each
record carries the hash of the one before, so an edited or deleted line breaks the chain.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ragkb.config import Settings

if TYPE_CHECKING:
    from ragkb.answer import AnswerResult

_GENESIS = "0" * 64
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()


class AccessError(RuntimeError):
    """Unknown user, bad password, or a users file that cannot be read."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    password_hash: str = ""


# --- users -------------------------------------------------------------------------------------
def users_configured(settings: Settings) -> bool:
    return settings.users_file is not None and settings.users_file.is_file()


def load_users(settings: Settings) -> dict[str, User]:
    if not users_configured(settings):
        return {}
    assert settings.users_file is not None
    try:
        data = tomllib.loads(settings.users_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AccessError(f"cannot read users file {settings.users_file}: {exc}") from exc
    users = {}
    for name, entry in (data.get("users") or {}).items():
        users[name] = User(name, tuple(sorted(entry.get("groups", []))), entry.get("password_hash", ""))
    return users


def get_user(settings: Settings, name: str) -> User:
    user = load_users(settings).get(name)
    if user is None:
        raise AccessError(f"unknown user '{name}' (not in {settings.users_file})")
    return user


def authenticate(settings: Settings, name: str, password: str) -> User:
    """Same error for unknown user and wrong password, so names cannot be probed."""
    user = load_users(settings).get(name)
    try:
        if user is None or not user.password_hash:
            raise VerificationError("no such user")
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise AccessError("invalid user name or password") from exc
    return user


def add_user(settings: Settings, name: str, password: str, groups: list[str]) -> User:
    """Create or replace a user; the file is rewritten atomically and kept private (0600)."""
    if settings.users_file is None:
        raise AccessError("set RAGKB_USERS_FILE (or users_file in ragkb.toml) first")
    if not _NAME.match(name) or not all(_NAME.match(g) and not g.startswith("__") for g in groups):
        raise AccessError("user and group names may use letters, digits and _ . @ - only (groups may not start with __)")
    users = load_users(settings)
    users[name] = User(name, tuple(sorted(set(groups))), _hasher.hash(password))
    lines = []
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += [f'[users."{user.name}"]', f"groups = {json.dumps(list(user.groups))}", f'password_hash = "{user.password_hash}"', ""]
    path = settings.users_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.replace(tmp, path)
    return users[name]


# --- audit log ---------------------------------------------------------------------------------
def _record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _last_hash(handle: Any) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return _GENESIS
    step = min(size, 65536)
    handle.seek(size - step)
    tail = handle.read(step).decode("utf-8", errors="replace").strip().splitlines()
    return json.loads(tail[-1])["hash"] if tail else _GENESIS


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
