"""Speed benchmarks: ingest throughput against a llama-index baseline, query and answer latency,
peak memory.

Both ingest paths run in one process on the same files with the same MiniLM weights and the same
store type (embedded Qdrant on disk), after a warm-up that loads the models and parsers, so the
ratio compares the pipelines rather than start-up costs:

* ragkb: `Ingestor.run(folder)` -- scan, parse (unstructured), chunk, embed, BM25, upsert, manifest;
* baseline: llama-index `SimpleDirectoryReader(folder)` + `VectorStoreIndex.from_documents` with
  `HuggingFaceEmbedding(<the same local model folder>)` into `QdrantVectorStore` on
  `QdrantClient(path=...)`, all defaults (SentenceSplitter 1024 tokens, embed batch 10).

Peak memory is `ru_maxrss` of this process after each phase (it only grows), and of a separate
query-only process that loads what `ragkb ask` loads.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.runtime import Runtime
from ragkb.eval.beir import load_beir
from ragkb.eval.metrics import latency_summary

Log = Callable[[str], None]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_documents(records: Sequence[tuple[str, str, str]], folder: Path) -> list[Path]:
    """One .txt file per record: the title, a blank line, the text."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc_id, title, text in records:
        path = folder / f"{doc_id}.txt"
        path.write_text(f"{title}\n\n{text}\n" if title else f"{text}\n", encoding="utf-8")
        paths.append(path)
    return paths


def _ragkb_ingest(settings: Settings, collection: str, folder: Path, embedder: Any) -> dict[str, Any]:
    from ragkb.ingest import Ingestor

    with Runtime(settings, collection, embedder=embedder) as runtime:
        started = time.perf_counter()
        report = Ingestor(runtime).run([folder])
        seconds = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"ragkb ingest failed on {len(report.failed)} files, e.g. {report.failed[0]}")
    return {"documents": report.added, "chunks": report.chunks, "seconds": round(seconds, 2)}


def _ragkb_records(settings: Settings, collection: str, records: Sequence[tuple[str, str, str]], embedder: Any) -> dict[str, Any]:
    from ragkb.ingest import Ingestor

    with Runtime(settings, collection, embedder=embedder) as runtime:
        started = time.perf_counter()
        report = Ingestor(runtime).ingest_records(list(records), "bench")
        seconds = time.perf_counter() - started
    return {"documents": report.added, "chunks": report.chunks, "seconds": round(seconds, 2)}


class LlamaIndexBaseline:
    """llama-index ingest and retrieval on the same model and store type, library defaults."""

    def __init__(self, model_path: Path, qdrant_path: Path) -> None:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from qdrant_client import QdrantClient

        self.embed_model = HuggingFaceEmbedding(model_name=str(model_path), device="cpu")
        qdrant_path.mkdir(parents=True, exist_ok=True)
        self.client = QdrantClient(path=str(qdrant_path))
        self.index: Any = None

    def ingest(self, folder: Path, collection: str, **reader: Any) -> dict[str, Any]:
        """`reader`: SimpleDirectoryReader options (e.g. recursive) for folders the defaults skip."""
        from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
        from llama_index.vector_stores.qdrant import QdrantVectorStore

        started = time.perf_counter()
        documents = SimpleDirectoryReader(str(folder), **reader).load_data()
        store = QdrantVectorStore(client=self.client, collection_name=collection)
        context = StorageContext.from_defaults(vector_store=store)
        self.index = VectorStoreIndex.from_documents(documents, storage_context=context, embed_model=self.embed_model)
        seconds = time.perf_counter() - started
        chunks = self.client.count(collection, exact=True).count
        return {"documents": len(documents), "chunks": chunks, "seconds": round(seconds, 2)}

    def retrieve(self, question: str, top_k: int = 5) -> list[Any]:
        return self.index.as_retriever(similarity_top_k=top_k).retrieve(question)

    def close(self) -> None:
        self.client.close()


def _rates(result: dict[str, Any]) -> dict[str, Any]:
    seconds = max(result["seconds"], 1e-9)
    return {**result, "docs_per_s": round(result["documents"] / seconds, 2), "chunks_per_s": round(result["chunks"] / seconds, 2)}


def run_benchmark(
    dataset_path: Path,
    workdir: Path,
    documents: int = 500,
    queries: int = 100,
    llm_questions: int = 10,
    base: Settings | None = None,
    log: Log = print,
    repeats: int = 2,
) -> dict[str, Any]:
    """Ingest `documents` corpus documents with ragkb and the baseline, then time queries."""
    from ragkb.answer import Answerer
    from ragkb.llm import NoGenerator, resolve_backend
    from ragkb.retrieve import Retriever
    from ragkb.weights import embedding_choice, load_embedder

    dataset = load_beir(dataset_path, "test")
    records = [record for record, _ in zip(dataset.records(), range(documents))]
    workdir = Path(workdir).expanduser().resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    folder = workdir / "docs"
    write_documents(records, folder)
    warm = workdir / "warmup"
    write_documents(records[:2], warm)
    settings = (base or Settings()).model_copy(update={"home": workdir / "ragkb-home"})
    model_path = embedding_choice(settings).path
    if model_path is None:
        raise RuntimeError(embedding_choice(settings).reason)
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "documents": len(records),
        "words_per_document": round(sum(len(f"{t} {x}".split()) for _, t, x in records) / len(records), 1),
        "model": str(model_path),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "rss_mb": {"start": peak_rss_mb()},
    }

    log("loading models and warming up both pipelines")
    embedder = load_embedder(settings)
    whole = settings.model_copy(update={"chunk_words": 750, "chunk_overlap_words": 0})
    _ragkb_ingest(settings, "warmup", warm, embedder)
    baseline = LlamaIndexBaseline(model_path, workdir / "llamaindex-qdrant")
    baseline.ingest(warm, "warmup")
    result["rss_mb"]["after_warmup"] = peak_rss_mb()

    # The machine may be shared: every pipeline runs `repeats` times, interleaved with the others,
    # and the fastest run counts (interference only ever slows a run down).
    pipelines: dict[str, Callable[[int], dict[str, Any]]] = {
        "ragkb": lambda r: _ragkb_ingest(settings, f"bench-{r}", folder, embedder),
        "llama-index": lambda r: baseline.ingest(folder, f"bench-{r}"),
        "ragkb (750-word chunks)": lambda r: _ragkb_ingest(whole, f"bench-750-{r}", folder, embedder),
        "ragkb ingest_records (750-word chunks)": lambda r: _ragkb_records(whole, f"bench-records-{r}", records, embedder),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in pipelines}
    for round_number in range(repeats):
        for name, run in pipelines.items():
            log(f"round {round_number + 1}/{repeats}: {name} ingest of {len(records)} files")
            runs[name].append(run(round_number))
            log(f"  {runs[name][-1]}")
            result["rss_mb"][f"after_{name}_ingest"] = peak_rss_mb()
    ingest = {name: {**_rates(min(rows, key=lambda row: row["seconds"])), "all_seconds": [row["seconds"] for row in rows]}
              for name, rows in runs.items()}
    ingest["ragkb, second run (unchanged files)"] = _rates(_ragkb_ingest(settings, "bench-0", folder, embedder))
    base_rate = ingest["llama-index"]
    for name, row in ingest.items():
        row["docs_per_s_vs_llamaindex"] = round(row["docs_per_s"] / base_rate["docs_per_s"], 2)
        row["chunks_per_s_vs_llamaindex"] = round(row["chunks_per_s"] / base_rate["chunks_per_s"], 2)
    result["ingest"] = ingest

    questions = list(dataset.queries.values())[:queries]
    log(f"query latency over {len(questions)} questions")
    latency: dict[str, Any] = {}
    runtime = Runtime(settings, "bench-0", embedder=embedder, generator=NoGenerator())
    retriever = Retriever(runtime)
    retriever.retrieve(questions[0])  # warm
    for mode in ("hybrid", "dense", "sparse"):
        times = []
        for question in questions:
            started = time.perf_counter()
            retriever.retrieve(question, top_k=settings.top_k, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
        latency[f"ragkb retrieve ({mode}, top {settings.top_k})"] = latency_summary(times)
    times = []
    baseline.retrieve(questions[0])
    for question in questions:
        started = time.perf_counter()
        baseline.retrieve(question, settings.top_k)
        times.append((time.perf_counter() - started) * 1000)
    latency[f"llama-index retrieve (dense, top {settings.top_k})"] = latency_summary(times)
    answerer = Answerer(runtime)
    times = [answerer.ask(question).timings_ms["total"] for question in questions]
    latency["ragkb answer, backend none"] = latency_summary(times)
    result["rss_mb"]["after_queries"] = peak_rss_mb()

    llm_settings = settings.model_copy(update={"llm_backend": "llamacpp"})
    generator = resolve_backend(llm_settings)
    llm_answerer = Answerer(runtime.derive(llm_settings, generator=generator))
    try:
        log(f"answer latency with {generator.name} over {llm_questions} questions")
        started = time.perf_counter()
        first = llm_answerer.ask(questions[0])
        if first.warnings and not first.answer:
            raise RuntimeError("; ".join(first.warnings))
        load_ms = (time.perf_counter() - started) * 1000
        answers = [llm_answerer.ask(question) for question in questions[1 : llm_questions + 1]]
        latency[f"ragkb answer, backend {generator.name}"] = {
            **latency_summary([a.timings_ms["total"] for a in answers]),
            "generate_p50": latency_summary([a.timings_ms.get("generate", 0.0) for a in answers])["p50"],
            "first_call_with_model_load_ms": round(load_ms, 1),
            "questions": len(answers),
        }
        result["rss_mb"]["after_llamacpp_answers"] = peak_rss_mb()
    except Exception as exc:  # noqa: BLE001 - an unavailable backend is a result, not a crash
        latency["ragkb answer, backend llamacpp"] = {"unavailable": str(exc)}
    result["latency_ms"] = latency
    runtime.close()
    baseline.close()
    log("peak memory of a query-only process")
    result["query_process_rss_mb"] = query_process_rss(settings, "bench-0", questions[:10])
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


_QUERY_PROCESS = """
import json, sys
from pathlib import Path
from ragkb.config import Settings
from ragkb.answer import Answerer
from ragkb.llm import NoGenerator, resolve_backend
from ragkb.runtime import Runtime
args = json.loads(sys.argv[1])
settings = Settings(home=Path(args["home"]), llm_backend=args["backend"])
generator = NoGenerator() if args["backend"] == "none" else resolve_backend(settings)
answerer = Answerer(Runtime(settings, args["collection"], generator=generator))
for question in args["questions"]:
    answerer.ask(question)
# VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss over fork + exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_mb": round(int(hwm.split()[1]) / 1024, 1)}))
"""


def query_process_rss(settings: Settings, collection: str, questions: list[str]) -> dict[str, Any]:
    """Peak RSS of a fresh process that answers a few questions (what `ragkb ask` or the UI holds)."""
    out: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGKB_")}
    env["RAGKB_CONFIG"] = "/nonexistent/ragkb.toml"
    for backend in ("none", "llamacpp"):
        args = json.dumps({"home": str(settings.home), "collection": collection, "backend": backend, "questions": questions})
        proc = subprocess.run([sys.executable, "-c", _QUERY_PROCESS, args], capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            out[backend] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
            continue
        out[backend] = json.loads(proc.stdout.strip().splitlines()[-1])["rss_mb"]
    return out
