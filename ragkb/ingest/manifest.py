"""Per-source ingest state in SQLite, which is the journal that makes a killed run recoverable.

Two tables: `sources` (one row per file path) and `docs` (one row per distinct content, keyed
by doc_id). A doc is marked `writing` before its points go to Qdrant and `ready` in the same
transaction that points its sources at it, so after a SIGKILL the next run can see exactly
which points may be partial or unreferenced and delete them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY,
    doc_id TEXT,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    acl TEXT,
    status TEXT NOT NULL,
    error TEXT,
    chunks INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_doc ON sources(doc_id);
CREATE TABLE IF NOT EXISTS docs (
    doc_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    payload_dirty INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    doc_type TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    summary TEXT
);
"""

OK = "ok"
FAILED = "failed"
WRITING = "writing"
READY = "ready"


@dataclass(frozen=True)
class SourceRow:
    path: str
    doc_id: str | None
    size: int
    mtime_ns: int
    sha256: str | None
    acl: list[str] | None
    status: str
    error: str | None
    chunks: int
    updated_at: float


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the threads of a process (the UI, the service), serialised by
        # an RLock that a transaction holds from BEGIN to COMMIT.
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self._mutex = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(docs)").fetchall()}
        if "doc_type" not in columns:  # manifests written before types were detected by content
            self._db.execute("ALTER TABLE docs ADD COLUMN doc_type TEXT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        with self._mutex:
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: tuple[object, ...] = ()) -> tuple | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _exec(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._mutex:
            return self._db.execute(sql, params)

    # --- sources -----------------------------------------------------------------------------
    def source(self, path: str) -> SourceRow | None:
        row = self._one("SELECT * FROM sources WHERE path = ?", (path,))
        return _source(row) if row else None

    def sources(self, doc_id: str | None = None) -> list[SourceRow]:
        if doc_id is None:
            rows = self._query("SELECT * FROM sources ORDER BY path")
        else:
            rows = self._query("SELECT * FROM sources WHERE doc_id = ? ORDER BY path", (doc_id,))
        return [_source(row) for row in rows]

    def put_source(
        self,
        path: str,
        *,
        doc_id: str | None,
        size: int,
        mtime_ns: int,
        sha256: str | None,
        acl: list[str] | None,
        status: str,
        error: str | None = None,
        chunks: int = 0,
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO sources VALUES (?,?,?,?,?,?,?,?,?,?)",
            (path, doc_id, size, mtime_ns, sha256, _dump(acl), status, error, chunks, time.time()),
        )

    def touch_source(self, path: str, size: int, mtime_ns: int) -> None:
        self._exec("UPDATE sources SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def remove_source(self, path: str) -> None:
        self._exec("DELETE FROM sources WHERE path = ?", (path,))

    # --- docs --------------------------------------------------------------------------------
    def doc_state(self, doc_id: str) -> str | None:
        row = self._one("SELECT state FROM docs WHERE doc_id = ?", (doc_id,))
        return row[0] if row else None

    def doc_chunks(self, doc_id: str) -> int:
        row = self._one("SELECT chunks FROM docs WHERE doc_id = ?", (doc_id,))
        return int(row[0]) if row else 0

    def put_doc(self, doc_id: str, state: str, chunks: int, doc_type: str | None = None) -> None:
        self._exec(
            "INSERT OR REPLACE INTO docs (doc_id, state, chunks, payload_dirty, updated_at, doc_type) VALUES (?,?,?,?,?,?)",
            (doc_id, state, chunks, 0, time.time(), doc_type),
        )

    def doc_type(self, doc_id: str) -> str | None:
        row = self._one("SELECT doc_type FROM docs WHERE doc_id = ?", (doc_id,))
        return row[0] if row else None

    def mark_payload_dirty(self, doc_id: str, dirty: bool) -> None:
        self._exec("UPDATE docs SET payload_dirty = ? WHERE doc_id = ?", (int(dirty), doc_id))

    def remove_doc(self, doc_id: str) -> None:
        self._exec("DELETE FROM docs WHERE doc_id = ?", (doc_id,))

    def stale_docs(self) -> list[str]:
        """Docs whose points may be partial (`writing`) or that no source references any more."""
        rows = self._query(
            "SELECT doc_id FROM docs WHERE state != ? OR doc_id NOT IN "
            "(SELECT doc_id FROM sources WHERE doc_id IS NOT NULL AND status = ?)",
            (READY, OK),
        )
        return [row[0] for row in rows]

    def dirty_docs(self) -> list[str]:
        return [row[0] for row in self._query("SELECT doc_id FROM docs WHERE payload_dirty = 1")]

    def total_chunks(self) -> int:
        return int(self._one("SELECT COALESCE(SUM(chunks), 0) FROM docs WHERE state = ?", (READY,))[0])

    # --- runs --------------------------------------------------------------------------------
    def start_run(self) -> int:
        cursor = self._exec("INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, summary: dict[str, object]) -> None:
        self._exec(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?", (time.time(), json.dumps(summary), run_id)
        )

    def last_run(self) -> dict[str, object] | None:
        row = self._one("SELECT started_at, finished_at, summary FROM runs ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        return {"started_at": row[0], "finished_at": row[1], "summary": json.loads(row[2]) if row[2] else None}

    def close(self) -> None:
        with self._mutex:
            self._db.close()


def _dump(acl: list[str] | None) -> str | None:
    return None if acl is None else json.dumps(sorted(acl))


def _source(row: tuple) -> SourceRow:
    acl = None if row[5] is None else json.loads(row[5])
    return SourceRow(row[0], row[1], row[2], row[3], row[4], acl, row[6], row[7], row[8], row[9])
