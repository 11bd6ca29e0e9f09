"""Ranking metrics (pytrec_eval / BEIR definitions) and latency summaries.

* nDCG@k: gain = the graded qrel value (trec_eval's linear gain), discount 1/log2(rank + 1),
  ideal DCG from all judged-relevant documents of the query; grade <= 0 is non-relevant.
* Recall@k: relevant documents in the top k / all relevant documents of the query.
* MRR@k: 1 / rank of the first relevant document within the top k, else 0.

Scores are per document: when chunking splits a document, its chunks' hits are merged into
one hit with the best chunk's score (max-pooling), as the BEIR protocol ranks documents.
Every query with at least one relevant judgement counts; a query with no results scores 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

Qrels = dict[str, dict[str, int]]
"""query id -> {doc id: grade}"""

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def ndcg_at_k(ranked: Sequence[str], judgements: dict[str, int], k: int) -> float:
    ideal = sorted((g for g in judgements.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return 0.0
    dcg = sum(max(judgements.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    return dcg / idcg


def recall_at_k(ranked: Sequence[str], judgements: dict[str, int], k: int) -> float:
    relevant = {doc for doc, g in judgements.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judgements: dict[str, int], k: int) -> float:
    for i, doc in enumerate(ranked[:k]):
        if judgements.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate_run(run: dict[str, list[str]], qrels: Qrels) -> dict[str, float]:
    """Mean metrics over every query with a relevant judgement (missing from run = empty list)."""
    judged = [qid for qid, docs in qrels.items() if any(g > 0 for g in docs.values())]
    if not judged:
        raise ValueError("no query has a relevant judgement")
    totals = dict.fromkeys(METRICS, 0.0)
    for qid in judged:
        ranked, judgements = run.get(qid, []), qrels[qid]
        totals["ndcg@10"] += ndcg_at_k(ranked, judgements, 10)
        totals["recall@10"] += recall_at_k(ranked, judgements, 10)
        totals["recall@100"] += recall_at_k(ranked, judgements, 100)
        totals["mrr@10"] += mrr_at_k(ranked, judgements, 10)
    return {name: round(value / len(judged), 4) for name, value in totals.items()}


def max_pool(hits: Iterable[tuple[Sequence[str], float]]) -> list[str]:
    """Chunk hits (the documents a chunk belongs to, score), best first -> documents, best first.

    A document's score is its best chunk's; Python's sort is stable, so ties keep hit order.
    """
    best: dict[str, float] = {}
    for docs, score in hits:
        for doc in docs:
            if doc not in best or score > best[doc]:
                best[doc] = score
    return sorted(best, key=lambda doc: -best[doc])


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 50), 1),
        "p95": round(percentile(latencies, 95), 1),
        "mean": round(statistics.fmean(latencies), 1) if latencies else float("nan"),
    }
