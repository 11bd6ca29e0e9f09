"""Retrieval evaluation on BEIR-format data: loader, metrics, and a runner over ragkb's pipeline.

The corpus goes through the real ingest path (`Ingestor.ingest_records`: chunk -> embed ->
upsert -> manifest) into its own collection, and queries through the real `Retriever`, so the
numbers describe what users get. Metrics follow the pytrec_eval / BEIR definitions:

* nDCG@k: gain = the graded qrel value (trec_eval's linear gain), discount 1/log2(rank + 1),
  ideal DCG from all judged-relevant documents of the query; grade <= 0 is non-relevant.
* Recall@k: relevant documents in the top k / all relevant documents of the query.
* MRR@k: 1 / rank of the first relevant document within the top k, else 0.

Scores are per document: when chunking splits a document, its chunks' hits are merged into
one hit with the best chunk's score (max-pooling), as the BEIR protocol ranks documents.
Every query with at least one relevant judgement counts; a query with no results scores 0.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkb.config import Settings

Qrels = dict[str, dict[str, int]]
"""query id -> {doc id: grade}"""

MODES = ("dense", "sparse", "hybrid", "rerank")
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
WHOLE_DOCUMENT = 0
"""`chunk_words` value meaning "one chunk per document" (the BEIR protocol); capped by _WHOLE."""
_WHOLE = 100_000

# Published SciFact test nDCG@10 etc. (shared/data/REFERENCE_NUMBERS.md); keyed by dataset name.
REFERENCES: dict[str, list[dict[str, Any]]] = {
    "scifact": [
        {"system": "BM25 flat (Pyserini)", "ndcg@10": 0.6789, "recall@100": 0.9253},
        {"system": "BM25 multifield (Pyserini, ~BEIR paper)", "ndcg@10": 0.6647, "recall@100": 0.9076},
        {"system": "BM25 bm25s (MTEB baseline)", "ndcg@10": 0.6874},
        {"system": "all-MiniLM-L6-v2 (MTEB)", "ndcg@10": 0.6451, "recall@10": 0.7833, "recall@100": 0.925, "mrr@10": 0.6047},
        {"system": "bge-small-en-v1.5 (MTEB)", "ndcg@10": 0.7127, "recall@10": 0.8362, "recall@100": 0.945, "mrr@10": 0.6823},
        {"system": "bge-base-en-v1.5 (Pyserini)", "ndcg@10": 0.7408},
    ],
}


# --- data ----------------------------------------------------------------------------------------
@dataclass
class BeirDataset:
    name: str
    path: Path
    corpus_path: Path
    queries: dict[str, str]
    qrels: Qrels
    split: str

    def records(self) -> Iterator[tuple[str, str, str]]:
        """(id, title, text) of every corpus document, streamed from corpus.jsonl."""
        with self.corpus_path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    doc = json.loads(line)
                    yield str(doc["_id"]), doc.get("title") or "", doc.get("text") or ""

    def corpus_size(self) -> int:
        with self.corpus_path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())


def load_qrels(path: Path) -> Qrels:
    """BEIR qrels TSV (query-id, corpus-id, score) with a header row; grade-0 rows are kept."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue
            qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = int(parts[2])
    return qrels


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv. Only judged queries are kept."""
    path = Path(path).expanduser().resolve()
    corpus = path / "corpus.jsonl"
    qrels_file = path / "qrels" / f"{split}.tsv"
    for required in (corpus, path / "queries.jsonl", qrels_file):
        if not required.is_file():
            raise FileNotFoundError(f"not a BEIR dataset folder: {required} is missing")
    qrels = {qid: docs for qid, docs in load_qrels(qrels_file).items() if any(g > 0 for g in docs.values())}
    queries: dict[str, str] = {}
    with (path / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                query = json.loads(line)
                if str(query["_id"]) in qrels:
                    queries[str(query["_id"])] = query["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} judged queries are not in queries.jsonl, e.g. {sorted(missing)[:3]}")
    return BeirDataset(path.name, path, corpus, queries, qrels, split)


# --- metrics -------------------------------------------------------------------------------------
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


# --- running -------------------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: str
    metrics: dict[str, float] | None
    latency_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class RetrievalReport:
    dataset: str
    split: str
    queries: int
    documents: int
    chunks: int
    collection: str
    home: str
    embed_model: str
    reranker: str
    settings: dict[str, Any]
    ingest: dict[str, Any]
    results: list[ModeResult]
    references: list[dict[str, Any]]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def eval_settings(base: Settings, home: Path | None, chunk_words: int | None) -> Settings:
    """The settings an evaluation runs with: its own home, and whole documents unless told."""
    update: dict[str, Any] = {}
    if home is not None:
        update["home"] = Path(home).expanduser().resolve()
    if chunk_words is not None:
        update["chunk_words"] = _WHOLE if chunk_words == WHOLE_DOCUMENT else chunk_words
    return base.model_copy(update=update)


def default_collection(dataset: str, settings: Settings) -> str:
    """One collection per dataset, model and chunk size, so switching any of them never mixes."""
    model = settings.embed_model.name if settings.embed_model else "minilm"
    words = "whole" if settings.chunk_words >= _WHOLE else f"w{settings.chunk_words}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"beir-{dataset}-{model}-{words}").lower()


def ingest_dataset(
    dataset: BeirDataset,
    settings: Settings,
    collection: str,
    progress: Callable[[str, str], None] | None = None,
    embedder: Any = None,
) -> dict[str, Any]:
    """Bring the collection in line with the corpus; a complete collection costs a manifest scan."""
    from ragkb.ingest import Ingestor

    ingestor = Ingestor(settings, collection, embedder=embedder)
    try:
        report = ingestor.ingest_records(dataset.records(), f"beir/{dataset.name}", progress=progress)
    finally:
        ingestor.close()
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} corpus documents failed, e.g. {report.failed[0]}")
    return report.to_dict()


def doc_ids_by_content(settings: Settings, collection: str) -> dict[str, list[str]]:
    """ragkb's content doc_id -> BEIR document ids (identical texts share one ragkb doc)."""
    from ragkb import manifest as mf

    manifest = mf.Manifest(settings.manifest_path(collection))
    try:
        mapping: dict[str, list[str]] = {}
        for row in manifest.sources():
            if row.status == mf.OK and row.doc_id:
                mapping.setdefault(row.doc_id, []).append(row.path.rsplit("/", 1)[-1])
        return mapping
    finally:
        manifest.close()


def run_queries(
    retriever: Any,
    queries: dict[str, str],
    doc_map: dict[str, list[str]],
    mode: str,
    depth: int,
    rerank_depth: int = 0,
    on_query: Callable[[], None] | None = None,
) -> tuple[dict[str, list[str]], list[float]]:
    """Rank documents for every query in one mode; returns the run and per-query latency (ms).

    `rerank` = hybrid retrieval whose top `rerank_depth` chunks are re-scored by the configured
    cross-encoder through `Retriever.retrieve(rerank=True)`; documents below keep hybrid order.
    """
    run: dict[str, list[str]] = {}
    latencies: list[float] = []
    for qid, text in queries.items():
        started = time.perf_counter()
        if mode == "rerank":
            base = retriever.retrieve(text, top_k=depth, mode="hybrid", rerank=False).passages
            top = retriever.retrieve(text, top_k=rerank_depth, mode="hybrid", rerank=True).passages
            head = max_pool((doc_map.get(p.doc_id, []), p.score) for p in top)
            tail = max_pool((doc_map.get(p.doc_id, []), p.score) for p in base)
            seen = set(head)
            ranked = head + [doc for doc in tail if doc not in seen]
        else:
            passages = retriever.retrieve(text, top_k=depth, mode=mode, rerank=False).passages
            ranked = max_pool((doc_map.get(p.doc_id, []), p.score) for p in passages)
        latencies.append((time.perf_counter() - started) * 1000)
        run[qid] = ranked
        if on_query:
            on_query()
    return run, latencies


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 50), 1),
        "p95": round(percentile(latencies, 95), 1),
        "mean": round(statistics.fmean(latencies), 1) if latencies else float("nan"),
    }


def evaluate_retrieval(
    dataset_path: Path,
    settings: Settings,
    collection: str | None = None,
    split: str = "test",
    modes: Sequence[str] = MODES,
    depth: int = 0,
    max_queries: int | None = None,
    embedder: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RetrievalReport:
    """Ingest (or reuse) the corpus, run every mode, and score it against the qrels.

    `depth` chunks are retrieved per query (0: enough for Recall@100 after merging chunks);
    hybrid fuses prefetch lists of max(prefetch_k, depth) candidates each.
    """
    from ragkb.models import load_reranker, reranker_choice
    from ragkb.retrieve import Retriever
    from ragkb.store import Store

    started = time.perf_counter()
    dataset = load_beir(dataset_path, split)
    collection = collection or default_collection(dataset.name, settings)
    notify = progress or (lambda stage, done, total: None)
    total_docs = dataset.corpus_size()
    done = [0]

    def on_record(path: str, outcome: str) -> None:
        done[0] += 1
        if done[0] % 64 == 0 or done[0] == total_docs:
            notify("ingest", done[0], total_docs)

    ingest = ingest_dataset(dataset, settings, collection, on_record, embedder)
    doc_map = doc_ids_by_content(settings, collection)
    queries = dict(list(dataset.queries.items())[:max_queries]) if max_queries else dataset.queries
    qrels = {qid: dataset.qrels[qid] for qid in queries}

    store = Store(settings, collection)
    try:
        chunks = store.count()
        if not depth:  # whole documents: 100 hits give Recall@100; split ones need headroom
            per_doc = chunks / max(1, len(doc_map))
            depth = 100 if per_doc <= 1.0 else math.ceil(150 * per_doc)
        run_settings = settings.model_copy(update={"prefetch_k": max(settings.prefetch_k, depth)})
        retriever = Retriever(run_settings, store=store, embedder=embedder)
        rerank_choice = reranker_choice(settings)
        results: list[ModeResult] = []
        for mode in modes:
            if mode == "rerank":
                if not rerank_choice.available:
                    results.append(ModeResult("hybrid+rerank", None, note=rerank_choice.reason))
                    continue
                load_reranker(settings)
            count = [0]

            def on_query() -> None:
                count[0] += 1
                if count[0] % 25 == 0 or count[0] == len(queries):
                    notify(mode, count[0], len(queries))

            run, latencies = run_queries(
                retriever, queries, doc_map, mode, depth, max(settings.rerank_candidates, 10), on_query
            )
            name = "hybrid+rerank" if mode == "rerank" else mode
            note = f"{settings.fusion} fusion, prefetch {run_settings.prefetch_k}" if mode in ("hybrid", "rerank") else ""
            if mode == "rerank":
                note += f", top {max(settings.rerank_candidates, 10)} chunks reranked"
            results.append(ModeResult(name, evaluate_run(run, qrels), latency_summary(latencies), note))
    finally:
        store.close()
    model = settings.embed_model.name if settings.embed_model else "all-MiniLM-L6-v2 (packaged)"
    return RetrievalReport(
        dataset=dataset.name,
        split=split,
        queries=len(queries),
        documents=total_docs,
        chunks=chunks,
        collection=collection,
        home=str(settings.home),
        embed_model=model,
        reranker=rerank_choice.reason,
        settings={
            "chunk_words": "whole document" if settings.chunk_words >= _WHOLE else settings.chunk_words,
            "chunk_overlap_words": settings.chunk_overlap_words,
            "fusion": settings.fusion,
            "prefetch_k": run_settings.prefetch_k,
            "depth_chunks": depth,
            "query_prefix": settings.query_prefix,
        },
        ingest=ingest,
        results=results,
        references=REFERENCES.get(dataset.name.lower(), []),
        seconds=round(time.perf_counter() - started, 1),
    )


def markdown_table(report: RetrievalReport) -> str:
    """Measured rows, then the published references, in one table."""
    head = "| system | " + " | ".join(METRICS) + " | query p50 / p95 ms |"
    rows = [head, "|" + "---|" * (len(METRICS) + 2)]
    for result in report.results:
        if result.metrics is None:
            rows.append(f"| ragkb {result.mode} | " + " | ".join("off" for _ in METRICS) + f" | {result.note} |")
            continue
        cells = " | ".join(f"{result.metrics[m]:.4f}" for m in METRICS)
        lat = f"{result.latency_ms['p50']:.0f} / {result.latency_ms['p95']:.0f}"
        rows.append(f"| **ragkb {result.mode}** | {cells} | {lat} |")
    for ref in report.references:
        cells = " | ".join(f"{ref[m]:.4f}" if m in ref else "" for m in METRICS)
        rows.append(f"| {ref['system']} (published) | {cells} | |")
    return "\n".join(rows)
