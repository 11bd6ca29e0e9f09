"""Parse and chunk files in child processes, each under a memory and a time limit.

A zip bomb, a pathological PDF or a parser stuck in a loop must cost one file, never the run
and never later runs: the parent only ever sees a value per file (chunks, or a ParseError
whose message says what happened), records it, and replaces a worker that died or overran.
Workers are forked from a fork server (a clean process that imported the parsers once,
`parser_preload`), never from the parent itself: the parent may hold torch's thread pools,
which do not survive a fork, and a fresh interpreter per worker would pay seconds of imports.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from time import monotonic
from typing import Any

from ragkb.chunk import Chunk, chunk_blocks
from ragkb.config import Settings
from ragkb.parse import ParseError, parse_document

log = logging.getLogger(__name__)

@dataclass
class Chunked:
    """A parsed file: its chunks, and what the operator should hear about it (low-confidence
    OCR pages and the like) although it was ingested."""

    chunks: list[Chunk]
    warnings: list[str]


ParseResult = Chunked | ParseError


def default_workers() -> int:
    """Parsing and embedding overlap: every core but one parses, one embeds."""
    return max(1, (os.cpu_count() or 2) - 1)


def parse_and_chunk(path: Path, settings: Settings) -> ParseResult:
    """Failures come back as values, so a worker never dies of an ordinary bad file."""
    try:
        parsed = parse_document(path, settings)
    except ParseError as exc:
        return exc
    except MemoryError:
        return ParseError(f"out of memory while parsing (over RAGKB_PARSE_MEMORY_MB={settings.parse_memory_mb})")
    except RecursionError:
        return ParseError("the document is nested too deeply for the parser")
    except Exception as exc:  # a parser bug on one file must not stop the run
        if "memory" in str(exc).lower():  # lxml and others report allocation failures as their own errors
            return ParseError(f"out of memory while parsing (over RAGKB_PARSE_MEMORY_MB={settings.parse_memory_mb})")
        log.exception("unexpected parser failure on %s", path)
        return ParseError(f"parser failure: {type(exc).__name__}: {str(exc)[:300]}")
    chunks = chunk_blocks(parsed.blocks, settings.chunk_words, settings.chunk_overlap_words)
    return Chunked(chunks, parsed.warnings) if chunks else ParseError("no text could be extracted")


def _worker_main(conn: Connection, settings: Settings) -> None:
    limit = settings.parse_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from ragkb import offline

    offline.enforce()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        task_id, path = task
        conn.send((task_id, parse_and_chunk(Path(path), settings)))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: tuple[int, float] | None = None  # (task id, deadline)


class ParsePool:
    """`results(paths)` yields each path's ParseResult in input order, parsing ahead in
    `workers` child processes."""

    def __init__(self, settings: Settings, workers: int = 0) -> None:
        self.settings = settings
        self.size = workers if workers > 0 else default_workers()
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["ragkb.ingest.parser_preload"])
        self._workers: list[_Worker] = []

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(child, self.settings), daemon=True, name="ragkb-parse")
        with _main_script_hidden():
            process.start()
        child.close()
        return _Worker(process, parent)

    def _replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self._workers[self._workers.index(worker)] = self._spawn()

    def results(self, paths: Iterable[Path]) -> Iterator[ParseResult]:
        queue = deque(enumerate(paths))
        done: dict[int, ParseResult] = {}
        names: dict[int, Path] = dict(queue)
        next_out = 0
        total = len(queue)
        if not self._workers:
            self._workers = [self._spawn() for _ in range(min(self.size, max(total, 1)))]
        while next_out < total:
            for worker in self._workers:
                if worker.task is None and queue and len(done) < 2 * self.size:
                    task_id, path = queue.popleft()
                    worker.conn.send((task_id, str(path)))
                    worker.task = (task_id, monotonic() + self.settings.parse_timeout_s)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if next_out >= total:
                break
            self._collect(done, names)

    def _collect(self, done: dict[int, ParseResult], names: dict[int, Path]) -> None:
        busy = [w for w in self._workers if w.task is not None]
        timeout = max(0.0, min(w.task[1] for w in busy) - monotonic()) if busy else None  # type: ignore[index]
        ready = wait([w.conn for w in busy], timeout=timeout)
        for worker in busy:
            assert worker.task is not None
            task_id, deadline = worker.task
            if worker.conn in ready:
                try:
                    got_id, result = worker.conn.recv()
                    done[got_id] = result
                    worker.task = None
                    continue
                except (EOFError, OSError):
                    worker.process.join(5)
                    done[task_id] = ParseError(_death_reason(worker.process.exitcode, self.settings))
            elif monotonic() >= deadline:
                done[task_id] = ParseError(
                    f"parsing took longer than RAGKB_PARSE_TIMEOUT_S={self.settings.parse_timeout_s:g} s; "
                    "skipped (raise the limit and change or touch the file to retry)"
                )
            else:
                continue
            log.warning("parser worker replaced after %s: %s", names.get(task_id), done[task_id])
            self._replace(worker)

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._workers:
            worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """multiprocessing re-runs the parent's `__main__` *script* in every child to rebuild its
    globals. The worker needs nothing from it, and under Streamlit that script is a UI page,
    which must not run in a parser process. Without `__file__` the script is not re-run; a
    main module started with `-m` (its `__spec__` set) is re-imported by name, harmlessly."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _death_reason(exitcode: int | None, settings: Settings) -> str:
    """A worker that dies mid-file was almost always killed for memory (RLIMIT_AS makes large
    allocations fail; some native code aborts instead of raising)."""
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    return (
        f"the parser process died on this file ({how}), most likely out of memory "
        f"(limit RAGKB_PARSE_MEMORY_MB={settings.parse_memory_mb}); skipped"
    )
