"""The Qdrant collection through qdrant-client: a server by URL (the production store), or
qdrant-client's own local mode (`RAGKB_EMBEDDED_STORE=local`, a Python re-implementation kept
for small bases and as the reference the embedded engine is tested against). One schema
(`ragkb.store.schema`): dense + BM25 sparse vectors, payload indexes, the reader's filter
inside every prefetch. The caller (`ragkb.store.open_store`) holds ragkb's lock for local mode.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient, models

from ragkb.config import Settings
from ragkb.errors import StoreError
from ragkb.store.fusion import hybrid_by_max
from ragkb.store.optimizer import Optimized
from ragkb.store.schema import DENSE, INDEXED_KEYWORDS, SPARSE, SearchMode, doc_filter, search_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    """A point as the backend returns it; `schema.passage` gives the typed view."""

    id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None  # the stored dense vector, returned by searches that had one


def dense_of(vector: Any) -> list[float] | None:
    """The dense vector out of a point's named vectors (either backend returns a mapping)."""
    if isinstance(vector, dict) and vector.get(DENSE) is not None:
        return [float(x) for x in vector[DENSE]]
    return None


@dataclass(frozen=True)
class NewPoint:
    """A chunk to write: its id, both vectors and its payload (built by `schema`)."""

    id: str
    dense: list[float]
    sparse: tuple[list[int], list[float]]
    payload: dict[str, Any]


def open_client(settings: Settings) -> QdrantClient:
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=60)
        try:
            client.get_collections()
        except Exception as exc:  # connection refused, TLS, 401: all mean the same to an operator
            client.close()
            raise StoreError(f"cannot use the Qdrant server at {settings.qdrant_url}: {_reason(exc)}") from exc
        return client
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return QdrantClient(path=str(settings.qdrant_path))
    except RuntimeError as exc:  # only when something bypassed ragkb's own lock
        raise StoreError(f"embedded Qdrant at {settings.qdrant_path} is open in another process") from exc


class QdrantStore:
    """One collection through qdrant-client."""

    def __init__(self, settings: Settings, collection: str | None = None) -> None:
        self.settings = settings
        self.collection = collection or settings.collection
        client = open_client(settings)
        # qdrant-client's local mode is plain Python and not safe for a query racing an upsert
        # from another thread (UI sessions, API workers): serialise its calls.
        self.client = client if settings.qdrant_url else _Serialized(client)

    # --- schema ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def ensure_collection(self, dim: int) -> None:
        if self.exists():
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) else None
            if size != dim:
                raise StoreError(
                    f"collection '{self.collection}' holds {size}-dim vectors but the embedding model "
                    f"gives {dim}; use another --collection or delete this one"
                )
            return
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=self.settings.shard_number,
            replication_factor=self.settings.replication_factor,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # embedded mode warns that indexes do nothing there
            for key in INDEXED_KEYWORDS:
                self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    # --- writes ------------------------------------------------------------------------------
    def upsert(self, points: Sequence[NewPoint]) -> None:
        structs = [
            models.PointStruct(
                id=p.id,
                vector={DENSE: p.dense, SPARSE: models.SparseVector(indices=p.sparse[0], values=p.sparse[1])},
                payload=p.payload,
            )
            for p in points
        ]
        for start in range(0, len(structs), self.settings.upsert_batch_size):
            self.client.upsert(self.collection, points=structs[start : start + self.settings.upsert_batch_size], wait=True)

    def delete_doc(self, doc_id: str) -> None:
        if not self.exists():
            return
        self.client.delete(self.collection, points_selector=models.FilterSelector(filter=doc_filter(doc_id)), wait=True)

    def set_doc_payload(self, doc_id: str, payload: dict[str, Any]) -> None:
        self.client.set_payload(self.collection, payload=payload, points=models.FilterSelector(filter=doc_filter(doc_id)), wait=True)

    # --- reads -------------------------------------------------------------------------------
    def count(self, query_filter: models.Filter | None = None) -> int:
        if not self.exists():
            return 0
        return self.client.count(self.collection, count_filter=query_filter, exact=True).count

    def scroll(self, query_filter: models.Filter | None = None, fields: Iterable[str] | bool = True) -> Iterator[Hit]:
        if not self.exists():  # as count() and search(): a collection not created yet is empty
            return
        offset = None
        with_payload = list(fields) if not isinstance(fields, bool) else fields
        while True:
            points, offset = self.client.scroll(
                self.collection, scroll_filter=query_filter, limit=512, offset=offset, with_payload=with_payload
            )
            for point in points:
                yield Hit(str(point.id), 0.0, point.payload or {})
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
        """The filter goes into every query and prefetch so ACLs bind before ranking; hybrid is
        two queries fused by `fusion` (RAGKB_FUSION=max) or one fused by Qdrant.
        `with_payload=False` returns ids and scores only (no payload, no vector)."""
        if not self.exists():
            return []
        sparse_query = models.SparseVector(indices=sparse[0], values=sparse[1]) if sparse and sparse[0] else None
        mode = search_mode(dense, sparse, mode)
        if mode == "hybrid" and self.settings.fusion == "max":
            return hybrid_by_max(self, dense, sparse, limit, query_filter)
        if mode == "dense" or mode == "sparse":
            query: Any = sparse_query if mode == "sparse" else (list(dense) if dense is not None else None)
            if query is None:
                return []
            response = self.client.query_points(
                self.collection,
                query=query,
                using=DENSE if mode == "dense" else SPARSE,
                limit=limit,
                query_filter=query_filter,
                with_payload=with_payload,
                with_vectors=[DENSE] if dense is not None and with_payload else False,
            )
        else:
            depth = max(limit, self.settings.prefetch_k)
            fusion = models.Fusion.RRF if self.settings.fusion == "rrf" else models.Fusion.DBSF
            response = self.client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(query=list(dense), using=DENSE, limit=depth, filter=query_filter),
                    models.Prefetch(query=sparse_query, using=SPARSE, limit=depth, filter=query_filter),
                ],
                query=models.FusionQuery(fusion=fusion),
                query_filter=query_filter,
                limit=limit,
                with_payload=with_payload,
                with_vectors=[DENSE] if with_payload else False,
            )
        return [Hit(str(p.id), float(p.score), p.payload or {}, dense_of(p.vector)) for p in response.points]

    def optimize(self) -> bool:
        """A server and local mode index by themselves: nothing to do."""
        return False

    def optimize_in_background(self, should_stop: Callable[[], bool] | None = None) -> Optimized:
        return Optimized("skipped", "a Qdrant server indexes by itself; local mode has no index")

    def close(self) -> None:
        self.client.close()


class _Serialized:
    """Every call on the wrapped client holds one lock."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
