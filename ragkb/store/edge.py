"""The embedded store on Qdrant's own engine, in-process, through `qdrant-edge-py` (pinned 0.9.0).

Why: qdrant-client's path mode is brute force in Python (hybrid + ACL ~6.6 s at 100k points);
Qdrant Edge runs the real segment/WAL/HNSW/sparse-index code of the server (milliseconds), so the
embedded store scales to the sizes a department base reaches. A Qdrant server by URL stays on
`ragkb.store.qdrant.QdrantStore`. (Longer than most modules: the filter translator and the
one-time migration from qdrant-client's local mode exist only for this engine, so they live here.)

`EdgeStore` has exactly the methods and semantics of `ragkb.store.qdrant.QdrantStore` and reads the same
filters (qdrant-client `models.Filter`, built by `ragkb.store.schema`), translated once here. It is
an adapter and nothing else: Qdrant Edge is beta, so the less code leans on it, the cheaper a
version change. What the engine does differently, measured on 0.9.0:

* One shard = one directory (`RAGKB_HOME/edge/<collection>`); there are no collections.
* Locking: none here. A second process that opens a shard breaks the first one's next flush
  (DESIGN, 2026-11-26), so the caller takes ragkb's flock on `RAGKB_HOME/store.lock` *before*
  constructing an EdgeStore, and keeps it until `close()`.
* Threads: safe without a lock of ours. Every binding method holds the GIL for its whole run
  (the pyo3 methods never release it: a pure-Python ticker thread ticked once during a 27 s
  optimize), so calls from several threads are serialised by the interpreter, and the Rust
  shard below is itself synchronised (WAL mutex, segment-holder RwLock, update lock). The cost:
  a long call stalls every Python thread of the process, not only store users (see
  `optimize()`). Checked with threads querying while a thread upserts, rewrites payloads and
  deletes (tests/test_store.py::test_edge_threads_query_while_writing).
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
* HNSW: `optimize()` is manual and blocking (see its docstring); until it runs, search is
  exact over plain segments: fine at 20k points (hybrid + ACL p50 3.6 ms), 17-19 ms p50 / 42 ms
  p95 at 100k, 175 / 246 ms at 1M (eval/store_bench.json, 2 cores under load 6-14).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from ragkb.config import Settings
from ragkb.errors import StoreError
from ragkb.store.qdrant import Hit, NewPoint, dense_of
from ragkb.store.schema import DENSE, INDEXED_KEYWORDS, SPARSE, SearchMode, doc_filter

log = logging.getLogger(__name__)

# The server's and qdrant-client local mode's default RRF constant: same ranks, same scores.
RRF_K = 2
_SCROLL_PAGE = 512
_CONFIG_FILE = "edge_config.json"  # the engine's persisted config: the only way to read the dim


def shard_path(settings: Settings, collection: str) -> Path:
    """Where a collection's shard lives: one directory per collection."""
    return settings.home / "edge" / collection


def shard_exists(path: Path) -> bool:
    return (path / _CONFIG_FILE).is_file()


class EdgeStore:
    """One collection as one Qdrant Edge shard. The caller holds ragkb's store lock (see module)."""

    def __init__(self, settings: Settings, collection: str) -> None:
        self.settings = settings
        self.collection = collection
        self.path = shard_path(settings, collection)
        self._shard: qe.EdgeShard | None = None
        if shard_exists(self.path):
            self._shard = _engine(f"cannot open the embedded store at {self.path}", qe.EdgeShard.load, str(self.path))

    @classmethod
    def _at(cls, settings: Settings, collection: str, path: Path) -> EdgeStore:
        """A store on another directory (the migration builds its shard aside, then renames it)."""
        store = cls.__new__(cls)
        store.settings, store.collection, store.path, store._shard = settings, collection, path, None
        if shard_exists(path):
            store._shard = _engine(f"cannot open the embedded store at {path}", qe.EdgeShard.load, str(path))
        return store

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
            self._shard = _engine(f"cannot create the embedded store at {self.path}", qe.EdgeShard.create, str(self.path), config)
        # Also on an existing shard: a crash between create and the indexes leaves them missing.
        present = set(self._shard.info().payload_schema)
        for key in INDEXED_KEYWORDS:
            if key not in present:
                self._update(qe.UpdateOperation.create_field_index(key, _keyword_index(key)))

    def drop(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
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
        if self._shard is None:
            return 0
        request = qe.CountRequest(exact=True, filter=to_edge_filter(query_filter))
        return _engine("counting in the embedded store failed", self._shard.count, request)

    def scroll(self, query_filter: models.Filter | None = None, fields: Iterable[str] | bool = True) -> Iterator[Hit]:
        if self._shard is None:
            return
        edge_filter = to_edge_filter(query_filter)
        with_payload = list(fields) if not isinstance(fields, bool) else fields
        offset = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=edge_filter, with_payload=with_payload)
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
    ) -> list[Hit]:
        """One engine query; the filter goes into every prefetch so ACLs bind before ranking."""
        if self._shard is None:
            return []
        sparse_query = qe.SparseVector(sparse[0], sparse[1]) if sparse and sparse[0] else None
        if mode == "hybrid" and (sparse_query is None or dense is None):
            mode = "dense" if sparse_query is None else "sparse"  # a stop-word-only question has no keywords
        edge_filter = to_edge_filter(query_filter)
        if mode == "dense" or mode == "sparse":
            vector: Any = sparse_query if mode == "sparse" else (list(dense) if dense is not None else None)
            if vector is None:
                return []
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector, using=DENSE if mode == "dense" else SPARSE),
                filter=edge_filter,
                with_payload=True,
                with_vector=[DENSE] if dense is not None else False,
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
                with_payload=True,
                with_vector=[DENSE],
            )
        points = _engine("searching the embedded store failed", self._shard.query, request)
        return [Hit(str(p.id), float(p.score), p.payload or {}, dense_of(p.vector)) for p in points]

    # --- maintenance -------------------------------------------------------------------------
    def optimize(self) -> bool:
        """Build the HNSW and sparse indexes and merge segments; True if anything changed.

        Blocking, and it stalls the whole process: the binding holds the GIL for the entire run,
        so no query from any other thread (UI, HTTP workers, even a health check) runs until it
        returns. Measured on 2 cores (eval/store_bench.json, load 5-14): 20k points 35-48 s,
        100k 583-894 s (169 s at a lower load in DESIGN), 1M unfinished after 14.5 min; a query
        started from another thread meanwhile waited for the whole optimize, every time. It
        only touches segments not yet optimized: after 20k points (18 s at load 2), adding 2k
        and optimizing again took 0.0 s (new points stay in the plain appendable segment until
        it passes the indexing threshold), so only bulk loads pay the long run.
        Run it where nobody waits (end of a CLI or nightly ingest, a maintenance command), never
        per upsert. Not needed for correctness: unoptimized plain segments answer exactly.
        """
        if self._shard is None:
            return False
        return _engine("optimizing the embedded store failed", self._shard.optimize)

    def close(self) -> None:
        """Close the shard (the engine flushes on close). The caller then releases its lock."""
        if self._shard is not None:
            shard, self._shard = self._shard, None
            shard.close()

    def _update(self, operation: qe.UpdateOperation) -> None:
        if self._shard is None:
            raise StoreError(f"collection '{self.collection}' does not exist in {self.path}")
        _engine("writing to the embedded store failed", self._shard.update, operation)


# --- filters -------------------------------------------------------------------------------------
def to_edge_filter(query_filter: models.Filter | None) -> qe.Filter | None:
    """qdrant-client's filter models -> the engine's classes, for what `schema` builds.

    Covers must/should/must_not over FieldCondition (MatchValue, MatchAny, MatchExcept),
    NestedCondition and nested Filters. Anything else raises ValueError: a silently dropped
    condition could be an ACL that no longer binds.
    """
    if query_filter is None:
        return None
    if not isinstance(query_filter, models.Filter):
        raise ValueError(f"not a qdrant_client Filter: {type(query_filter).__name__}")
    if query_filter.min_should is not None:
        raise ValueError("min_should is not supported by the embedded store adapter")
    return qe.Filter(
        must=_conditions(query_filter.must),
        should=_conditions(query_filter.should),
        must_not=_conditions(query_filter.must_not),
    )


def _conditions(conditions: Any) -> list[Any] | None:
    if conditions is None:
        return None
    if not isinstance(conditions, list):  # qdrant-client accepts one condition as well as a list
        conditions = [conditions]
    return [_condition(c) for c in conditions]


def _condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return to_edge_filter(condition)
    if isinstance(condition, models.NestedCondition):
        return qe.NestedCondition(condition.nested.key, to_edge_filter(condition.nested.filter))  # type: ignore[arg-type]
    if isinstance(condition, models.FieldCondition):
        others = {"range", "geo_bounding_box", "geo_radius", "geo_polygon", "values_count", "is_empty", "is_null"}
        used = sorted(name for name in others if getattr(condition, name, None) is not None)
        if used or condition.match is None:
            raise ValueError(f"field condition on '{condition.key}' uses {used or 'no match'}: not supported by the adapter")
        return qe.FieldCondition(condition.key, match=_match(condition.key, condition.match))
    raise ValueError(f"filter condition {type(condition).__name__} is not supported by the embedded store adapter")


def _match(key: str, match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return qe.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(list(match.any))
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(list(match.except_))
    raise ValueError(f"match {type(match).__name__} on '{key}' is not supported by the embedded store adapter")


# --- migration from qdrant-client's path mode ----------------------------------------------------
def migrate_local_collection(settings: Settings, collection: str, page: int = 2048) -> int | None:
    """Copy a collection of the old qdrant-client local folder (`RAGKB_HOME/qdrant`) into a new
    shard; the number of points copied, or None when there is nothing to migrate (no such
    collection there, or its shard exists already).

    The caller holds ragkb's store lock. The shard is built beside its final place and renamed
    when complete, so a crash mid-copy leaves no half shard that would later look migrated (the
    next call starts over). The old folder is renamed `qdrant.migrated-<timestamp>` once every
    collection in it has a shard: renaming it earlier would hide collections not yet migrated
    (each is migrated when first opened). Vectors are copied as stored: no re-embedding. Pages
    are large because local mode sorts every id for each scroll page (quadratic in pages).
    """
    from qdrant_client import QdrantClient

    source = settings.qdrant_path
    target = shard_path(settings, collection)
    if shard_exists(target) or not (source / "collection" / collection).is_dir():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns above 20k points: it is being retired
        client = QdrantClient(path=str(source))
    try:
        vectors = client.get_collection(collection).config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            raise StoreError(f"collection '{collection}' in {source} has no '{DENSE}' vector: not a ragkb collection")
        building = target.with_name(target.name + ".migrating")
        if building.exists():
            shutil.rmtree(building)  # left by a migration that was killed
        store = EdgeStore._at(settings, collection, building)
        copied = 0
        try:
            store.ensure_collection(vectors[DENSE].size)
            offset = None
            while True:
                points, offset = client.scroll(collection, limit=page, offset=offset, with_payload=True, with_vectors=True)
                store.upsert([_new_point(point) for point in points])
                copied += len(points)
                if offset is None:
                    break
        finally:
            store.close()
        building.rename(target)
        remaining = [c.name for c in client.get_collections().collections if not shard_exists(shard_path(settings, c.name))]
    finally:
        client.close()
    log.info("migrated %d points of '%s' from %s to %s", copied, collection, source, target)
    if not remaining:
        retired = source.with_name(f"{source.name}.migrated-{time.strftime('%Y%m%dT%H%M%S')}")
        source.rename(retired)
        log.info("moved the old embedded store to %s", retired)
    return copied


def _new_point(point: models.Record) -> NewPoint:
    vector = point.vector if isinstance(point.vector, dict) else {}
    sparse = vector.get(SPARSE)
    return NewPoint(
        id=str(point.id),
        dense=list(vector[DENSE]),  # type: ignore[arg-type]
        sparse=(list(sparse.indices), list(sparse.values)) if isinstance(sparse, models.SparseVector) else ([], []),
        payload=point.payload or {},
    )


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
