"""Hybrid retrieval as llama-index components: a retriever over ragkb's Qdrant schema and a
cross-encoder rerank postprocessor.

The user's ACL filter and the UI's facet filters are one Qdrant filter passed into the query
(and every prefetch), so a chunk the user may not read can never be ranked, reranked or shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr
from qdrant_client import models

from ragkb import acl as acl_rules
from ragkb.config import Settings
from ragkb.models import Embedder, load_embedder, load_reranker
from ragkb.sparse import query_vector
from ragkb.store import SearchMode, Store


@dataclass(frozen=True)
class Filters:
    """Facets a user narrows a question to; combined with the ACL inside the Qdrant query."""

    file_types: tuple[str, ...] = ()
    folder: str | None = None


@dataclass
class Passage:
    id: str
    doc_id: str
    source: str
    page: int | None
    section: str | None
    text: str
    score: float
    kind: str
    file_type: str | None


@dataclass
class Retrieval:
    passages: list[Passage]
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranked: bool = False


def build_filter(groups: list[str] | None, filters: Filters | None, settings: Settings) -> models.Filter | None:
    conditions: list[models.Condition] = []
    access = acl_rules.acl_filter(groups, settings)
    if access is not None:
        conditions.extend(access.must or [])
    if filters and filters.file_types:
        conditions.append(models.FieldCondition(key="file_type", match=models.MatchAny(any=list(filters.file_types))))
    if filters and filters.folder:
        folder = str(Path(filters.folder).expanduser().resolve())
        conditions.append(models.FieldCondition(key="dirs", match=models.MatchValue(value=folder)))
    return models.Filter(must=conditions) if conditions else None


class HybridRetriever(BaseRetriever):
    """Dense + BM25 prefetch fused inside one Qdrant query."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        limit: int,
        query_filter: models.Filter | None = None,
        mode: SearchMode = "hybrid",
    ) -> None:
        super().__init__()
        self._store = store
        self._embedder = embedder
        self._limit = limit
        self._filter = query_filter
        self._mode = mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = query_bundle.query_str
        dense = None if self._mode == "sparse" else self._embedder.encode_query(question).tolist()
        sparse = None if self._mode == "dense" else query_vector(question)
        hits = self._store.search(dense, sparse, self._limit, self._filter, self._mode)
        return [
            NodeWithScore(node=TextNode(id_=hit.id, text=hit.payload.get("text", ""), metadata=hit.payload), score=hit.score)
            for hit in hits
        ]


class CrossEncoderRerank(BaseNodePostprocessor):
    """Rerank with a locally loaded cross-encoder (llama-index's own loads by hub name)."""

    top_n: int = 5
    _model: Any = PrivateAttr()

    def __init__(self, model: Any, top_n: int) -> None:
        super().__init__(top_n=top_n)
        self._model = model

    @classmethod
    def class_name(cls) -> str:
        return "CrossEncoderRerank"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None:
            return nodes[: self.top_n]
        scores = self._model.predict([(query_bundle.query_str, n.node.get_content()) for n in nodes], show_progress_bar=False)
        for node, score in zip(nodes, scores):
            node.score = float(score)
        return sorted(nodes, key=lambda n: n.score or 0.0, reverse=True)[: self.top_n]


class Retriever:
    """Question -> passages the user may read, best first."""

    def __init__(self, settings: Settings, store: Store | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self._embedder = embedder
        self._reranker: Any = None
        self._reranker_loaded = False

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def reranker(self) -> Any:
        if not self._reranker_loaded:
            self._reranker = load_reranker(self.settings)
            self._reranker_loaded = True
        return self._reranker

    def warm_up(self) -> float:
        """Load the models now (ms taken), so per-question timings measure questions, not loading."""
        started = time.perf_counter()
        _ = self.embedder, self.reranker
        return _ms(started)

    def retrieve(
        self,
        question: str,
        top_k: int | None = None,
        groups: list[str] | None = None,
        filters: Filters | None = None,
        mode: SearchMode = "hybrid",
        rerank: bool = True,
    ) -> Retrieval:
        k = top_k or self.settings.top_k
        use_rerank = rerank and self.reranker is not None
        limit = max(k, self.settings.rerank_candidates) if use_rerank else k
        query_filter = build_filter(groups, filters, self.settings)
        bundle = QueryBundle(question)
        started = time.perf_counter()
        nodes = HybridRetriever(self.store, self.embedder, limit, query_filter, mode).retrieve(bundle)
        timings = {"retrieve": _ms(started)}
        if use_rerank:
            started = time.perf_counter()
            nodes = CrossEncoderRerank(self.reranker, k).postprocess_nodes(nodes, bundle)
            timings["rerank"] = _ms(started)
        return Retrieval([_passage(node, groups, self.settings) for node in nodes[:k]], timings, use_rerank)


def _passage(node: NodeWithScore, groups: list[str] | None, settings: Settings) -> Passage:
    meta = node.node.metadata
    return Passage(
        id=node.node.node_id,
        doc_id=meta.get("doc_id", ""),
        source=_visible_path(meta, groups, settings),
        page=meta.get("page"),
        section=meta.get("section"),
        text=meta.get("text", ""),
        score=float(node.score or 0.0),
        kind=meta.get("kind", "text"),
        file_type=(meta.get("file_type") or [None])[0],
    )


def _visible_path(meta: dict[str, Any], groups: list[str] | None, settings: Settings) -> str:
    """Identical content may sit in folders with different ACLs; cite one this user may read."""
    entries = meta.get("path_acl") or []
    for entry in entries:
        if acl_rules.may_read(groups, entry.get("acl"), settings):
            return str(entry["path"])
    return str(entries[0]["path"]) if entries else ""


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
