"""The Qdrant collection: one schema (dense + BM25 sparse vectors), embedded or server.

qdrant-client already hides its embedded (path) mode behind the server API, so ragkb keeps a
single Store class and chooses the backend only in `open_client`.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qdrant_client import QdrantClient, models

from ragkb.config import Settings

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "sparse"
SearchMode = Literal["hybrid", "dense", "sparse"]
# Payload keys that queries filter on get an index on a server (embedded mode ignores them).
_INDEXED_KEYWORDS = ("doc_id", "acl", "dirs", "file_type")
_POINT_NAMESPACE = uuid.UUID("6f1c3a52-2f0e-4c59-9a55-0c7c5d0a9b11")


class StoreError(RuntimeError):
    """The vector store cannot be opened or used; the message says what to fix."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


def point_id(doc_id: str, chunk_index: int) -> str:
    """Deterministic ids make a re-run after a crash overwrite, never duplicate."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}:{chunk_index}"))


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
    except RuntimeError as exc:
        raise StoreError(
            f"embedded Qdrant at {settings.qdrant_path} is open in another process "
            "(an ingest run or the UI); use a Qdrant server (RAGKB_QDRANT_URL) for concurrent access"
        ) from exc


class Store:
    def __init__(self, settings: Settings, collection: str | None = None, client: QdrantClient | None = None):
        self.settings = settings
        self.collection = collection or settings.collection
        self.client = client or open_client(settings)

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
            for key in _INDEXED_KEYWORDS:
                self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    # --- writes ------------------------------------------------------------------------------
    def upsert(self, points: Sequence[models.PointStruct]) -> None:
        for start in range(0, len(points), self.settings.upsert_batch_size):
            self.client.upsert(
                self.collection, points=list(points[start : start + self.settings.upsert_batch_size]), wait=True
            )

    def delete_doc(self, doc_id: str) -> None:
        if not self.exists():
            return
        self.client.delete(self.collection, points_selector=_doc_filter(doc_id), wait=True)

    def set_doc_payload(self, doc_id: str, payload: dict[str, Any]) -> None:
        self.client.set_payload(self.collection, payload=payload, points=_doc_filter(doc_id), wait=True)

    # --- reads -------------------------------------------------------------------------------
    def count(self, query_filter: models.Filter | None = None) -> int:
        if not self.exists():
            return 0
        return self.client.count(self.collection, count_filter=query_filter, exact=True).count

    def scroll(self, query_filter: models.Filter | None = None, fields: Iterable[str] | bool = True) -> Iterator[Hit]:
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
    ) -> list[Hit]:
        """One Qdrant query; the filter goes into every prefetch so ACLs bind before ranking."""
        if not self.exists():
            return []
        sparse_query = models.SparseVector(indices=sparse[0], values=sparse[1]) if sparse and sparse[0] else None
        if mode == "hybrid" and (sparse_query is None or dense is None):
            mode = "dense" if sparse_query is None else "sparse"  # a stop-word-only question has no keywords
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
                with_payload=True,
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
                with_payload=True,
            )
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in response.points]

    def close(self) -> None:
        self.client.close()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _doc_filter(doc_id: str) -> models.FilterSelector:
    return models.FilterSelector(
        filter=models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))])
    )
