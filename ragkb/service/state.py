"""What the service must remember across restarts: ingest jobs (a job the service was killed in
the middle of is run again at start), the answers it gave (so feedback can name one) and the
feedback itself. One SQLite file under RAGKB_HOME, shared by the service's threads."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    paths TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    user TEXT,
    question_sha256 TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT NOT NULL,
    user TEXT,
    rating INTEGER NOT NULL,
    comment TEXT,
    created_at REAL NOT NULL
);
"""


class ServiceState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- jobs --------------------------------------------------------------------------------
    def add_job(self, kind: str, paths: list[str]) -> str:
        job_id = uuid.uuid4().hex
        self._run("INSERT INTO jobs (job_id, kind, paths, state, created_at) VALUES (?,?,?,?,?)", (job_id, kind, json.dumps(paths), "queued", time.time()))
        return job_id

    def set_job(self, job_id: str, state: str, summary: dict[str, Any] | None = None, error: str | None = None) -> None:
        finished = time.time() if state in ("done", "failed") else None
        self._run(
            "UPDATE jobs SET state = ?, summary = ?, error = ?, finished_at = ? WHERE job_id = ?",
            (state, json.dumps(summary) if summary is not None else None, error, finished, job_id),
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT job_id, kind, paths, state, summary, error, created_at, finished_at FROM jobs WHERE job_id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        """Queued or running when the service stopped: to be run (again) now, oldest first."""
        rows = self._run(
            "SELECT job_id, kind, paths, state, summary, error, created_at, finished_at FROM jobs "
            "WHERE state IN ('queued', 'running') ORDER BY created_at"
        )
        return [_job(row) for row in rows]

    # --- answers and feedback ----------------------------------------------------------------
    def add_answer(self, answer_id: str, user: str | None, question_sha256: str) -> None:
        self._run("INSERT INTO answers VALUES (?,?,?,?)", (answer_id, user, question_sha256, time.time()))

    def answer_user(self, answer_id: str) -> tuple[bool, str | None]:
        rows = self._run("SELECT user FROM answers WHERE answer_id = ?", (answer_id,))
        return (True, rows[0][0]) if rows else (False, None)

    def add_feedback(self, answer_id: str, user: str | None, rating: int, comment: str | None) -> None:
        self._run("INSERT INTO feedback VALUES (?,?,?,?,?)", (answer_id, user, rating, comment, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _job(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "job_id": row[0],
        "kind": row[1],
        "paths": json.loads(row[2]),
        "state": row[3],
        "summary": json.loads(row[4]) if row[4] else None,
        "error": row[5],
        "created_at": row[6],
        "finished_at": row[7],
    }
