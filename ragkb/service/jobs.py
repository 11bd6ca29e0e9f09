"""The ingest queue: one writer at a time, the others queued, progress observable.

Jobs are journaled in `ServiceState` before they run, so a service killed mid-ingest runs the
job again when it starts; the ingest itself is crash-safe (the manifest protocol), so the
second run finishes the work without duplicates. Deletions take the same writer lock.

Maintenance: once the queue has been idle for `MAINTENANCE_IDLE_S` (after the service starts,
after each job), the embedded store indexes what was added (`optimize_in_background`, when
`optimize_min_points` points are unindexed) in a child process while questions keep being
answered. It runs in the queue's thread, so no job writes meanwhile, and a job submitted
meanwhile stops it (it runs again at the next idle time); it does not take the writer lock, so
a deletion never waits for it: the store then discards the optimized copy, which lacks the
deletion.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragkb.errors import Busy, RagkbError
from ragkb.ingest import FINAL_OUTCOMES, Ingestor, IngestReport
from ragkb.runtime import Runtime
from ragkb.service.state import ServiceState

log = logging.getLogger(__name__)

MAX_QUEUED = 100
MAINTENANCE_IDLE_S = 30.0  # a burst of small jobs (a UI upload per file) is indexed once, after it


class IngestQueue:
    def __init__(self, runtime: Runtime, state: ServiceState, on_report: Callable[[IngestReport], None] | None = None) -> None:
        self.runtime = runtime
        self.state = state
        self._on_report = on_report or (lambda report: None)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._progress: dict[str, dict[str, Any]] = {}
        self._writer = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="ragkb-ingest", daemon=True)

    def start(self) -> None:
        """Run what a previous service left unfinished, then serve new jobs."""
        for job in self.state.unfinished_jobs():
            log.info("resuming ingest job %s interrupted by a restart", job["job_id"])
            self.state.set_job(job["job_id"], "queued")
            self._queue.put(job["job_id"])
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def submit(self, paths: list[str], kind: str = "ingest") -> str:
        if self._queue.qsize() >= MAX_QUEUED:
            raise Busy(f"{MAX_QUEUED} ingest jobs are already queued; try again later")
        job_id = self.state.add_job(kind, paths)
        self._queue.put(job_id)
        return job_id

    def job(self, job_id: str) -> dict[str, Any] | None:
        job = self.state.job(job_id)
        if job is not None:
            job["progress"] = dict(self._progress.get(job_id, {"done": 0, "total": None, "current": None}))
        return job

    def pending(self) -> int:
        return self._queue.qsize()

    @contextmanager
    def writer(self, wait_s: float) -> Any:
        """The write lock for work outside the queue (a deletion); Busy if a job holds it longer."""
        if not self._writer.acquire(timeout=wait_s):
            raise Busy("an ingest job is writing to the knowledge base; try again when it finishes")
        try:
            yield
        finally:
            self._writer.release()

    def _work(self) -> None:
        maintenance_due = True  # also for a base ingested by the CLI before the service started
        while True:
            try:
                job_id = self._queue.get(timeout=MAINTENANCE_IDLE_S if maintenance_due else None)
            except queue.Empty:
                maintenance_due = False
                self._maintain()
                continue
            if job_id is None:
                return
            job = self.state.job(job_id)
            if job is None or job["state"] not in ("queued", "running"):
                continue
            with self._writer:
                self._run(job)
            maintenance_due = True

    def _maintain(self) -> None:
        try:
            self.runtime.store.optimize_in_background(should_stop=lambda: not self._queue.empty())
        except RagkbError as exc:
            log.warning("could not index the store: %s", exc)
        except Exception:  # maintenance must not kill the queue thread either
            log.exception("indexing the store failed")

    def _run(self, job: dict[str, Any]) -> None:
        job_id = job["job_id"]
        progress = self._progress.setdefault(job_id, {"done": 0, "total": None, "current": None})
        self.state.set_job(job_id, "running")

        def on_file(path: str, event: str) -> None:
            progress["current"] = path
            if event in FINAL_OUTCOMES and event not in ("unchanged", "skipped"):
                progress["done"] += 1

        def on_total(count: int) -> None:
            progress.update(total=count, done=0)

        try:
            roots = [Path(p) for p in job["paths"]] or [source.path for source in self.runtime.settings.sources]
            if not roots:
                raise RagkbError("nothing to ingest: give paths or configure [[sources]] in ragkb.toml")
            report = Ingestor(self.runtime).run(roots, progress=on_file, total=on_total)
        except RagkbError as exc:
            self.state.set_job(job_id, "failed", error=str(exc))
            return
        except Exception as exc:  # a bug must fail the job, not kill the queue thread
            log.exception("ingest job %s failed", job_id)
            self.state.set_job(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.state.set_job(job_id, "done", summary=report.to_dict())
        self._on_report(report)
