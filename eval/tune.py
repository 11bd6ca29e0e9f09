"""Tune hybrid fusion and BM25 parameters on the SciFact *train* split, report test once.

Usage (after `ragkb eval retrieval --dataset .../scifact --home /tmp/ragkb-eval`, which builds
the whole-document collection this reads):

    python eval/tune.py --dataset /work/shared/data/beir/scifact --home /tmp/ragkb-eval \
        --save eval/tune.json

What it does, without re-embedding anything:
1. dense top-200 lists per query from the ingested collection (real Qdrant query);
2. sparse lists from an in-memory copy of ragkb's BM25 (ragkb.sparse tokeniser and weighting,
   Qdrant's IDF modifier ln(1 + (N - n + 0.5) / (n + 0.5))), checked against Qdrant's own sparse
   ranking for the shipped parameters;
3. fusion with qdrant-client's own RRF / DBSF functions (what embedded mode runs), sweeping the
   prefetch depth, the RRF constant k (Qdrant's default is 2) and BM25 k1 / b / avg length;
4. picks the best setting by train nDCG@10 and reports it on test next to the shipped defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from qdrant_client import models
from qdrant_client.hybrid.fusion import distribution_based_score_fusion, reciprocal_rank_fusion

from ragkb import sparse
from ragkb.config import Settings
from ragkb.eval.beir import load_beir
from ragkb.eval.metrics import evaluate_run, max_pool
from ragkb.weights import load_embedder
from ragkb.store import Store, open_store, schema

DEPTH = 200


def ranked_dense(store: Store, embedder, queries: dict[str, str]) -> dict[str, list[tuple[str, float]]]:
    """Dense top DEPTH per query through the store interface (either backend)."""
    out = {}
    for qid, text in queries.items():
        hits = store.search(embedder.encode_query(text).tolist(), None, DEPTH, mode="dense")
        out[qid] = [(schema.paths(h.payload)[0].rsplit("/", 1)[-1], h.score) for h in hits]
    return out


class Bm25:
    """ragkb.sparse's document weighting + Qdrant's IDF, scored in memory."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.ids = list(docs)
        self.tokens = [sparse.tokenize(text) for text in docs.values()]
        self.df: Counter[str] = Counter()
        for toks in self.tokens:
            self.df.update(set(toks))
        self.n = len(self.ids)
        self.avg_len = sum(map(len, self.tokens)) / self.n

    def index(self, k1: float, b: float, avg: float) -> dict[str, list[tuple[int, float]]]:
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, toks in enumerate(self.tokens):
            norm = k1 * (1 - b + b * len(toks) / avg)
            for term, tf in Counter(toks).items():
                postings[term].append((i, tf * (k1 + 1) / (tf + norm)))
        return postings

    def idf(self, term: str) -> float:
        n = self.df.get(term, 0)
        return math.log(1 + (self.n - n + 0.5) / (n + 0.5))

    def search(self, postings, query: str, limit: int = DEPTH) -> list[tuple[str, float]]:
        scores: dict[int, float] = defaultdict(float)
        for term, count in Counter(sparse.tokenize(query)).items():
            weight = count * self.idf(term)
            for doc, value in postings.get(term, ()):
                scores[doc] += weight * value
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:limit]
        return [(self.ids[i], s) for i, s in best]


def fuse(dense, sparse_list, method: str, depth: int, k: int | None) -> list[str]:
    def as_points(hits):  # the same document must have the same point id in both lists
        return [models.ScoredPoint(id=int(d) if d.isdigit() else abs(hash(d)), version=0, score=s, payload={"doc": d}) for d, s in hits[:depth]]

    responses = [as_points(dense), as_points(sparse_list)]
    if method == "rrf":
        fused = reciprocal_rank_fusion(responses, limit=100, ranking_constant_k=k)
    else:
        fused = distribution_based_score_fusion(responses, limit=100)
    return max_pool(([p.payload["doc"]], p.score) for p in fused)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--collection", default="beir-scifact-minilm-whole")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    started = time.time()
    train, test = load_beir(args.dataset, "train"), load_beir(args.dataset, "test")
    settings = Settings(home=args.home.resolve(), chunk_words=100_000)
    embedder = load_embedder(settings)
    store = open_store(settings, args.collection)
    docs = {i: f"{t} {x}".strip() for i, t, x in train.records()}
    print(f"dense lists for {len(train.queries)} train + {len(test.queries)} test queries", file=sys.stderr)
    dense = {"train": ranked_dense(store, embedder, train.queries), "test": ranked_dense(store, embedder, test.queries)}
    bm25 = Bm25(docs)
    print(f"corpus avg tokens after stop words: {bm25.avg_len:.1f}", file=sys.stderr)
    splits = {"train": train, "test": test}
    shipped = (sparse.K1, sparse.B, sparse.AVG_DOC_TOKENS)
    cache: dict[tuple, dict[str, dict[str, list]]] = {}

    def sparse_lists(params):
        if params not in cache:
            postings = bm25.index(*params)
            cache[params] = {s: {q: bm25.search(postings, text) for q, text in splits[s].queries.items()} for s in splits}
        return cache[params]

    # 0. the in-memory BM25 must rank like Qdrant's sparse search for the shipped parameters
    check_q = list(test.queries.items())[:20]
    same = 0
    postings = bm25.index(*shipped)
    for qid, text in check_q:
        hits = store.search(None, sparse.query_vector(text), 10, mode="sparse")
        mine = [d for d, _ in bm25.search(postings, text, 10)]
        same += [schema.paths(h.payload)[0].rsplit("/", 1)[-1] for h in hits] == mine
    store.close()
    results: dict = {"check_sparse_top10_identical_to_qdrant": f"{same}/{len(check_q)}", "avg_tokens": round(bm25.avg_len, 1)}

    def score(split, method, depth, k, params):
        lists = sparse_lists(params)[split]
        run = {q: fuse(dense[split][q], lists[q], method, depth, k) for q in splits[split].queries}
        return evaluate_run(run, splits[split].qrels)

    def sparse_only(split, params):
        lists = sparse_lists(params)[split]
        return evaluate_run({q: [d for d, _ in lists[q]] for q in lists}, splits[split].qrels)

    grid_bm25 = [(k1, b, avg) for k1 in (0.6, 0.9, 1.2, 1.5) for b in (0.3, 0.4, 0.6, 0.75) for avg in (100.0, round(bm25.avg_len, 1))]
    bm25_rows = [{"k1": p[0], "b": p[1], "avg": p[2], "train_ndcg@10": sparse_only("train", p)["ndcg@10"]} for p in grid_bm25]
    best_bm25 = max(bm25_rows, key=lambda r: r["train_ndcg@10"])
    best_params = (best_bm25["k1"], best_bm25["b"], best_bm25["avg"])
    results["bm25_grid_train"] = bm25_rows
    results["bm25"] = {
        "shipped": {"params": shipped, "train": sparse_only("train", shipped), "test": sparse_only("test", shipped)},
        "best_on_train": {"params": best_params, "train": sparse_only("train", best_params), "test": sparse_only("test", best_params)},
    }
    print(json.dumps(results["bm25"]), file=sys.stderr)

    fusion_rows = []
    for params in {shipped, best_params}:
        for method, k in (("rrf", 2), ("rrf", 10), ("rrf", 60), ("dbsf", None)):
            for depth in (20, 50, 100, 200):
                row = {"method": method, "k": k, "prefetch": depth, "bm25": params,
                       "train_ndcg@10": score("train", method, depth, k, params)["ndcg@10"]}
                fusion_rows.append(row)
    results["fusion_grid_train"] = fusion_rows
    best = max(fusion_rows, key=lambda r: r["train_ndcg@10"])
    default = {"method": "rrf", "k": 2, "prefetch": 50, "bm25": shipped}
    results["hybrid"] = {
        "shipped (rrf k=2, prefetch 50)": {**default, "train": score("train", "rrf", 50, 2, shipped), "test": score("test", "rrf", 50, 2, shipped)},
        "best_on_train": {**best, "train": score("train", best["method"], best["prefetch"], best["k"], best["bm25"]),
                          "test": score("test", best["method"], best["prefetch"], best["k"], best["bm25"])},
        "dense_only": {"train": evaluate_run({q: [d for d, _ in v] for q, v in dense["train"].items()}, train.qrels),
                       "test": evaluate_run({q: [d for d, _ in v] for q, v in dense["test"].items()}, test.qrels)},
    }
    results["seconds"] = round(time.time() - started, 1)
    text = json.dumps(results, indent=2)
    if args.save:
        args.save.write_text(text)
    print(json.dumps(results["hybrid"], indent=2))
    print(json.dumps(results["bm25"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
