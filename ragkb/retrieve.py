"""Hybrid retrieval as llama-index components: a retriever over ragkb's Qdrant schema and a
cross-encoder rerank postprocessor.

The user's ACL filter and the UI's facet filters are one Qdrant filter passed into the query
(and every prefetch), so a chunk the user may not read can never be ranked, reranked or shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr
from qdrant_client import models

from ragkb.questions import check_question
from ragkb.runtime import Runtime
from ragkb.sparse import query_vector
from ragkb.store import Store
from ragkb.store.schema import TEXT, Filters, Passage, SearchMode, build_filter, passage
from ragkb.weights import Embedder

__all__ = ["CrossEncoderRerank", "Filters", "HybridRetriever", "Passage", "Retrieval", "Retriever"]


@dataclass
class Retrieval:
    passages: list[Passage]
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranked: bool = False


class HybridRetriever(BaseRetriever):
    """Dense + BM25 search, fused by the store (ragkb's max fusion over two filtered engine
    queries, or the engine's DBSF/RRF inside one)."""

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
        self.query_embedding: list[float] | None = None  # the last question's, for `relevance`

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = query_bundle.query_str
        dense = None if self._mode == "sparse" else self._embedder.encode_query(question).tolist()
        self.query_embedding = dense
        sparse = None if self._mode == "dense" else query_vector(question)
        hits = self._store.search(dense, sparse, self._limit, self._filter, self._mode)
        return [
            NodeWithScore(node=TextNode(id_=hit.id, text=hit.payload.get(TEXT, ""), metadata=hit.payload, embedding=hit.dense), score=hit.score)
            for hit in hits
        ]

    def relevance(self, node: NodeWithScore) -> float | None:
        """Cosine of the question and the passage (both vectors are unit length)."""
        vector = node.node.embedding
        if self.query_embedding is None or vector is None:
            return None
        return float(np.dot(self.query_embedding, vector))


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

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    def warm_up(self) -> float:
        """Load the models now (ms taken), so per-question timings measure questions, not loading."""
        started = time.perf_counter()
        _ = self.runtime.embedder, self.runtime.reranker
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
        question = check_question(question, self.settings.max_question_chars)
        k = top_k or self.settings.top_k
        reranker = self.runtime.reranker if rerank else None
        limit = max(k, self.settings.rerank_candidates) if reranker is not None else k
        query_filter = build_filter(groups, filters, self.settings)
        bundle = QueryBundle(question)
        started = time.perf_counter()
        retriever = HybridRetriever(self.runtime.store, self.runtime.embedder, limit, query_filter, mode)
        nodes = retriever.retrieve(bundle)
        timings = {"retrieve": _ms(started)}
        if reranker is not None:
            started = time.perf_counter()
            nodes = CrossEncoderRerank(reranker, k).postprocess_nodes(nodes, bundle)
            timings["rerank"] = _ms(started)
        passages = [
            passage(n.node.node_id, float(n.score or 0.0), n.node.metadata, groups, self.settings, retriever.relevance(n))
            for n in nodes[:k]
        ]
        return Retrieval(passages, timings, reranker is not None)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
