"""The embedded store on Qdrant's own engine, in-process, through `qdrant-edge-py` (pinned 0.9.0).

Why: qdrant-client's path mode is brute force in Python (hybrid + ACL ~6.6 s at 100k points);
Qdrant Edge runs the real segment/WAL/HNSW/sparse-index code of the server (milliseconds), so the
embedded store scales to the sizes a department base reaches. A Qdrant server by URL stays on
`ragkb.store.qdrant.QdrantStore`. Beside it: `edge_filters` (filters translated for the engine),
`optimizer` (indexes built without stalling queries), `migrate` (once, from qdrant-client's
local mode).

`EdgeStore` has exactly the methods and semantics of `ragkb.store.qdrant.QdrantStore` and reads
the same filters (qdrant-client `models.Filter`, built by `ragkb.store.schema`). It is an adapter
and nothing else: Qdrant Edge is beta, so the less code leans on it, the cheaper a version
change. What the engine does differently, measured on 0.9.0:

* One shard = one directory (`RAGKB_HOME/edge/<collection>`); there are no collections.
* Locking between processes: none here. A second process that opens a shard breaks the first
  one's next flush (DESIGN, 2026-11-26), so the caller takes ragkb's flock on
  `RAGKB_HOME/store.lock` *before* constructing an EdgeStore, and keeps it until `close()`.
  The optimizer child opens a copy in another directory, never the shard.
* Threads: every binding method holds the GIL for its whole run (the pyo3 methods never release
  it: a pure-Python ticker thread ticked once during a 27 s optimize), so calls from several
  threads are serialised by the interpreter, and the Rust shard below is itself synchronised
  (WAL mutex, segment-holder RwLock, update lock). The cost: a long call stalls every Python
  thread of the process, not only store users (see `optimize()`). Checked with threads querying
  while a thread upserts, rewrites payloads and deletes (tests/test_store.py::
  test_edge_threads_query_while_writing). Our one lock, a readers-writer gate, exists for
  `optimize_in_background`: every engine call holds it shared, swapping in the optimized shard
  and closing hold it exclusively, so no call meets a shard being replaced.
* Durability: `update` writes the WAL before it returns, so an acknowledged upsert survives the
  process being killed (kill -9 after upserts, then reopen: every point is there and WAL replay
  restores it; tests/test_store.py::test_edge_kill9_keeps_acknowledged_points). That is the same
  promise as a server's `wait=True`: the WAL is in the page cache, not fsynced per operation, so
  an OS crash or power loss may lose the last writes until `flush()` (called by `close()`).
* Fusion: RRF needs an explicit k; 2 is the server's default (`DEFAULT_RRF_K`) and
  qdrant-client local mode's, with the same formula 1/(rank + k); DBSF is the server's (mean
  +- 3 sample standard deviations, a single hit scores 0.5), identical to local mode.
* Payload indexes: the `locations[].*` keys are indexed per element (see `_keyword_index`).
* Sparse IDF counts deleted points until a vacuum (optimize, once >= 20 % of a segment of
  >= 1000 points is deleted) rewrites their segment, as a server's does; local mode recounts at
  once. BM25 scores drift a little after deletes; ranks barely.
* HNSW: the engine never indexes by itself; until it does, search is exact over plain segments:
  fine at 20k points (hybrid + ACL p50 3.6 ms), 17-19 ms p50 / 42 ms p95 at 100k, 175 / 246 ms
  at 1M (eval/store_bench.json, 2 cores under load 6-14). `optimize()` indexes in-process and
  stalls the process; `optimize_in_background()` indexes a copy in a child process and swaps it
  in, queries wait only for the swap (ragkb.store.optimizer). The service runs it when its
  ingest queue goes idle with at least `optimize_min_points` points unindexed
  (ragkb.service.jobs). A CLI ingest does not: it would hold the store lock, and so keep
  `ragkb ask` out, for the whole optimize (~15 min at 100k); the service indexes such a base
  once it runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from ragkb.config import Settings
from ragkb.errors import StoreError
from ragkb.store import optimizer
from ragkb.store.edge_filters import to_edge_filter
from ragkb.store.fusion import hybrid_by_max
from ragkb.store.optimizer import Optimized, ReadWriteLock
from ragkb.store.qdrant import Hit, NewPoint, dense_of
from ragkb.store.schema import DENSE, INDEXED_KEYWORDS, SPARSE, SearchMode, doc_filter, search_mode

log = logging.getLogger(__name__)

# The server's and qdrant-client local mode's default RRF constant: same ranks, same scores.
RRF_K = 2
_SCROLL_PAGE = 512
_CONFIG_FILE = "edge_config.json"  # the engine's persisted config: the only way to read the dim
_WRITTEN = "the store was written to during the optimize; the copy would lose that write"


def shard_path(settings: Settings, collection: str) -> Path:
    """Where a collection's shard lives: one directory per collection."""
    return settings.home / "edge" / collection


def shard_exists(path: Path) -> bool:
    return (path / _CONFIG_FILE).is_file()


class EdgeStore:
    """One collection as one Qdrant Edge shard. The caller holds ragkb's store lock (see module)."""

    def __init__(self, settings: Settings, collection: str, path: Path | None = None) -> None:
        """`path`: another directory than the collection's (the migration builds its shard aside)."""
        self.settings = settings
        self.collection = collection
        self.path = path or shard_path(settings, collection)
        self._gate = ReadWriteLock()  # shared: each engine call; exclusive: replacing or closing the shard
        self._writes = 0  # updates so far: a background optimize discards its copy if this moved
        self._job: optimizer.Job | None = None
        self._job_lock = threading.Lock()
        self._shard: qe.EdgeShard | None = optimizer.recover(self.path, _load)  # after a crash mid-swap too

    # --- schema ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._shard is not None

    def ensure_collection(self, dim: int) -> None:
        if self._shard is not None:
            size = _stored_dim(self.path)
            if size is None:
                raise StoreError(f"cannot read the vector size of the embedded store at {self.path} ({_CONFIG_FILE})")
            if size != dim:
                raise StoreError(
                    f"collection '{self.collection}' holds {size}-dim vectors but the embedding model "
                    f"gives {dim}; use another --collection or delete this one"
                )
        else:
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._gate.exclusive():
                self._shard = _engine(f"cannot create the embedded store at {self.path}", qe.EdgeShard.create, str(self.path), config)
        # Also on an existing shard: a crash between create and the indexes leaves them missing.
        with self._gate.shared():
            present = set(self._shard.info().payload_schema) if self._shard is not None else set()
        for key in INDEXED_KEYWORDS:
            if key not in present:
                self._update(qe.UpdateOperation.create_field_index(key, _keyword_index(key)))

    def drop(self) -> None:
        self.close()
        if self.path.exists():
            shutil.rmtree(self.path)

    # --- writes ------------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        batch = self.settings.upsert_batch_size
        for start in range(0, len(points), batch):
            structs = [
                qe.Point(p.id, {DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse[0], p.sparse[1])}, p.payload)
                for p in points[start : start + batch]
            ]
            self._update(qe.UpdateOperation.upsert_points(structs))

    def delete_doc(self, doc_id: str) -> None:
        if self._shard is None:
            return
        self._update(qe.UpdateOperation.delete_points_by_filter(to_edge_filter(doc_filter(doc_id))))

    def set_doc_payload(self, doc_id: str, payload: dict[str, Any]) -> None:
        self._update(qe.UpdateOperation.set_payload_by_filter(to_edge_filter(doc_filter(doc_id)), payload))

    # --- reads -------------------------------------------------------------------------------
    def count(self, query_filter: models.Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=to_edge_filter(query_filter))
        with self._gate.shared():
            return _engine("counting in the embedded store failed", self._shard.count, request) if self._shard is not None else 0

    def scroll(self, query_filter: models.Filter | None = None, fields: Iterable[str] | bool = True) -> Iterator[Hit]:
        edge_filter = to_edge_filter(query_filter)
        with_payload = list(fields) if not isinstance(fields, bool) else fields
        offset = None
        while True:  # the gate per page, never across a yield: the consumer may call the store
            request = qe.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=edge_filter, with_payload=with_payload)
            with self._gate.shared():
                if self._shard is None:
                    return
                records, offset = _engine("reading the embedded store failed", self._shard.scroll, request)
            for record in records:
                yield Hit(str(record.id), 0.0, record.payload or {})
            if offset is None:
                return

    def search(
        self,
        dense: Sequence[float] | None,
        sparse: tuple[list[int], list[float]] | None,
        limit: int,
        query_filter: models.Filter | None = None,
        mode: SearchMode = "hybrid",
        with_payload: bool = True,
    ) -> list[Hit]:
        """The filter goes into every engine query and prefetch so ACLs bind before ranking;
        hybrid is two queries fused by `fusion` (RAGKB_FUSION=max) or one fused by the engine.
        `with_payload=False` returns ids and scores only (no payload, no vector)."""
        sparse_query = qe.SparseVector(sparse[0], sparse[1]) if sparse and sparse[0] else None
        mode = search_mode(dense, sparse, mode)
        if mode == "hybrid" and self.settings.fusion == "max":
            return hybrid_by_max(self, dense, sparse, limit, query_filter)
        edge_filter = to_edge_filter(query_filter)
        if mode == "dense" or mode == "sparse":
            vector: Any = sparse_query if mode == "sparse" else (list(dense) if dense is not None else None)
            if vector is None:
                return []
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector, using=DENSE if mode == "dense" else SPARSE),
                filter=edge_filter,
                with_payload=with_payload,
                with_vector=[DENSE] if dense is not None and with_payload else False,
            )
        else:
            depth = max(limit, self.settings.prefetch_k)
            fusion = qe.Fusion.Rrf(k=RRF_K) if self.settings.fusion == "rrf" else qe.Fusion.Dbsf()
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=depth, query=qe.Query.Nearest(list(dense), using=DENSE), filter=edge_filter),  # type: ignore[arg-type]
                    qe.Prefetch(limit=depth, query=qe.Query.Nearest(sparse_query, using=SPARSE), filter=edge_filter),
                ],
                query=fusion,
                filter=edge_filter,
                with_payload=with_payload,
                with_vector=[DENSE] if with_payload else False,
            )
        with self._gate.shared():
            if self._shard is None:
                return []
            points = _engine("searching the embedded store failed", self._shard.query, request)
        return [Hit(str(p.id), float(p.score), p.payload or {}, dense_of(p.vector)) for p in points]

    # --- maintenance -------------------------------------------------------------------------
    def optimize(self) -> bool:
        """Build the HNSW and sparse indexes and merge segments; True if anything changed.

        Blocking, and it stalls the whole process: the binding holds the GIL for the entire run,
        so no query from any other thread (UI, HTTP workers, even a health check) runs until it
        returns. Measured on 2 cores (eval/store_bench.json, load 5-14): 20k points 35-48 s,
        100k 583-894 s (172 s at load ~1), 1M 97 min (niced beside other jobs, load 2-6); a query
        started from another thread meanwhile waited for the whole optimize, every time. It
        only touches segments not yet optimized: after 20k points (18 s at load 2), adding 2k
        and optimizing again took 0.0 s (new points stay in the plain appendable segment until
        it passes the indexing threshold), so only bulk loads pay the long run.
        Run it where nobody waits, never per upsert; where queries are served, use
        `optimize_in_background`. Not needed for correctness: plain segments answer exactly.
        """
        with self._gate.shared():
            return _engine("optimizing the embedded store failed", self._shard.optimize) if self._shard is not None else False

    def optimize_in_background(self, should_stop: Callable[[], bool] | None = None) -> Optimized:
        """What `optimize()` does, in a child process on a copy of the shard, then swapped in
        (ragkb.store.optimizer): the calling thread waits for it, every other thread keeps
        querying, and waits only for the swap. Skipped unless `settings.optimize_min_points`
        points (at least one) are unindexed. Writing meanwhile is allowed and discards the copy;
        so do `close()` and `should_stop()` returning True (polled every 0.2 s). Needs free disk
        for the copy and its new segments, about twice the shard's size.
        """
        began = time.perf_counter()
        with self._job_lock:
            if self._job is not None:
                return Optimized("skipped", "a background optimize is already running")
            job = self._job = optimizer.Job(self.path)
        try:
            result = self._optimize_aside(job, should_stop)
        except (OSError, StoreError) as exc:
            result = Optimized("failed", str(exc))
        finally:
            job.cancel()
            job.discard()
            with self._job_lock:
                self._job = None
        result = replace(result, seconds=round(time.perf_counter() - began, 1))
        level = {"failed": logging.WARNING, "skipped": logging.DEBUG}.get(result.outcome, logging.INFO)
        log.log(level, "background optimize of '%s': %s (%s; %.1f s)", self.collection, result.outcome, result.detail, result.seconds)
        return result

    def unindexed_points(self) -> int:
        """Points whose dense vector is in no HNSW index yet (searched exactly, so slower). The
        engine reports only how many vectors are indexed, dense and sparse together, and indexes
        every non-empty sparse vector as it arrives: a point with an empty one counts here too."""
        with self._gate.shared():
            info = self._shard.info() if self._shard is not None else None
        return max(0, 2 * info.points_count - info.indexed_vectors_count) if info is not None else 0

    def close(self) -> None:
        """Stop a background optimize (its child killed, its copy removed), then close the shard
        (the engine flushes on close). The caller then releases its lock."""
        with self._job_lock:
            job = self._job
        if job is not None:
            job.cancel()
        with self._gate.exclusive():
            if self._shard is not None:
                shard, self._shard = self._shard, None
                shard.close()
        if job is not None:
            job.discard()  # its thread cannot copy any more: it copies under the gate, if a shard is open

    def _optimize_aside(self, job: optimizer.Job, should_stop: Callable[[], bool] | None) -> Optimized:
        unindexed = self.unindexed_points()
        if unindexed == 0 or unindexed < self.settings.optimize_min_points:
            return Optimized("skipped", f"{unindexed} points unindexed, fewer than optimize_min_points={self.settings.optimize_min_points}")
        with self._gate.shared():
            if self._shard is None:
                return Optimized("stopped", "the store was closed")
            writes = self._writes
            _engine("flushing the embedded store failed", self._shard.flush)
            no_room = job.make_copy()
        if no_room:
            return Optimized("skipped", no_room)

        def stop() -> Optimized | None:
            if self._writes != writes:
                return Optimized("discarded", _WRITTEN)
            return Optimized("stopped", "asked to stop") if should_stop is not None and should_stop() else None

        return job.run(stop) or self._swap_in(writes)

    def _swap_in(self, writes: int) -> Optimized:
        """Replace the shard by its optimized copy: queries wait here, for a close, two renames
        and a load. A copy that does not load or misses points is refused; the old shard stays."""
        began = time.perf_counter()
        with self._gate.exclusive():
            if self._shard is None:
                return Optimized("stopped", "the store was closed")
            if self._writes != writes:
                return Optimized("discarded", _WRITTEN)
            points = _engine("counting in the embedded store failed", self._shard.count, qe.CountRequest(exact=True))

            def load(path: Path) -> qe.EdgeShard | None:
                loaded = _load(path)
                held = loaded.count(qe.CountRequest(exact=True)) if loaded is not None else 0
                if held != points:
                    if loaded is not None:
                        loaded.close()
                    raise StoreError(f"the optimized copy holds {held} points, the shard {points}")
                return loaded

            shard, self._shard = self._shard, None
            try:
                _engine("closing the embedded store failed", shard.close)
                self._shard, refused = optimizer.swap(self.path, load)
            except (OSError, StoreError) as exc:  # put back whichever step it stopped at
                self._shard = optimizer.recover(self.path, _load)
                return Optimized("failed", f"swapping in the optimized copy failed: {exc}")
        if refused:
            return Optimized("failed", refused)
        shutil.rmtree(optimizer.retired(self.path), ignore_errors=True)
        return Optimized("swapped", f"queries waited {time.perf_counter() - began:.2f} s for the swap")

    def _update(self, operation: qe.UpdateOperation) -> None:
        with self._gate.shared():
            if self._shard is None:
                raise StoreError(f"collection '{self.collection}' does not exist in {self.path}")
            try:
                _engine("writing to the embedded store failed", self._shard.update, operation)
            finally:
                self._writes += 1  # after the call: a background optimize that read the count before it sees it move


# --- helpers -------------------------------------------------------------------------------------
def _keyword_index(key: str) -> Any:
    """`locations[].dirs` is indexed per element of `locations` (`nested="locations"`), not as one
    flat bag of values per point: the folder facet is a NestedCondition (folder *and* ACL in the
    same location), which a flat index cannot answer, so the engine read every candidate's
    payload: 30-90 ms at 20k points against 1-3 ms with the per-element index. The engine also
    accepts the flat form (the server's classic one); plain per-point keys stay plain."""
    if "[]." in key:
        return qe.KeywordIndexParams(nested=key.rsplit("[].", 1)[0])
    return qe.PayloadSchemaType.Keyword


def _load(path: Path) -> qe.EdgeShard | None:
    if not shard_exists(path):
        return None
    return _engine(f"cannot open the embedded store at {path}", qe.EdgeShard.load, str(path))


def _stored_dim(path: Path) -> int | None:
    """The engine has no config getter; it persists the resolved config next to the segments."""
    try:
        return int(json.loads((path / _CONFIG_FILE).read_text())["vectors"][DENSE]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _engine(what: str, call: Any, *args: Any) -> Any:
    """The engine raises bare `Exception`: give callers ragkb's StoreError (HTTP 503, exit 2)."""
    try:
        return call(*args)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"{what}: {exc}") from exc
