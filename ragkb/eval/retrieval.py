"""Retrieval evaluation over ragkb's real pipeline.

The corpus goes through the real ingest path (`Ingestor.ingest_records`: chunk -> embed ->
upsert -> manifest) into its own collection, and queries through the real `Retriever`, so the
numbers describe what users get. Metrics are in `ragkb.eval.metrics`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.eval.beir import REFERENCES, BeirDataset, load_beir
from ragkb.eval.metrics import METRICS, evaluate_run, latency_summary, max_pool
from ragkb.runtime import Runtime

MODES = ("dense", "sparse", "hybrid", "rerank")
WHOLE_DOCUMENT = 0
"""`chunk_words` value meaning "one chunk per document" (the BEIR protocol); capped by _WHOLE."""
_WHOLE = 100_000


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


def ingest_dataset(dataset: BeirDataset, runtime: Runtime, progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Bring the collection in line with the corpus; a complete collection costs a manifest scan."""
    from ragkb.ingest import Ingestor

    report = Ingestor(runtime).ingest_records(dataset.records(), f"beir/{dataset.name}", progress=progress)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} corpus documents failed, e.g. {report.failed[0]}")
    return report.to_dict()


def doc_ids_by_content(runtime: Runtime) -> dict[str, list[str]]:
    """ragkb's content doc_id -> BEIR document ids (identical texts share one ragkb doc)."""
    from ragkb.ingest import manifest as mf

    mapping: dict[str, list[str]] = {}
    for row in runtime.manifest.sources():
        if row.status == mf.OK and row.doc_id:
            mapping.setdefault(row.doc_id, []).append(row.path.rsplit("/", 1)[-1])
    return mapping


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
    from ragkb.retrieve import Retriever
    from ragkb.weights import reranker_choice

    started = time.perf_counter()
    dataset = load_beir(dataset_path, split)
    collection = collection or default_collection(dataset.name, settings)
    notify = progress or (lambda stage, done, total: None)
    total_docs = dataset.corpus_size()
    done = [0]

    def on_record(path: str, outcome: str) -> None:
        if outcome.startswith("embedding "):  # a batch starting, not a record done
            return
        done[0] += 1
        if done[0] % 64 == 0 or done[0] == total_docs:
            notify("ingest", done[0], total_docs)

    runtime = Runtime(settings, collection, embedder=embedder)
    try:
        ingest = ingest_dataset(dataset, runtime, on_record)
        doc_map = doc_ids_by_content(runtime)
        queries = dict(list(dataset.queries.items())[:max_queries]) if max_queries else dataset.queries
        qrels = {qid: dataset.qrels[qid] for qid in queries}
        chunks = runtime.store.count()
        if not depth:  # whole documents: 100 hits give Recall@100; split ones need headroom
            per_doc = chunks / max(1, len(doc_map))
            depth = 100 if per_doc <= 1.0 else math.ceil(150 * per_doc)
        run_settings = settings.model_copy(update={"prefetch_k": max(settings.prefetch_k, depth)})
        retriever = Retriever(runtime.derive(run_settings))
        rerank_choice = reranker_choice(settings)
        results: list[ModeResult] = []
        for mode in modes:
            if mode == "rerank":
                if not rerank_choice.available:
                    results.append(ModeResult("hybrid+rerank", None, note=rerank_choice.reason))
                    continue
                _ = retriever.runtime.reranker  # loaded before timing starts
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
        runtime.close()
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
