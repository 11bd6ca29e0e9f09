"""Query and answer latency with the modes interleaved per question, on existing collections.

The machine is shared, so a load spike during one mode's loop would otherwise be charged to that
mode alone; here every question runs every mode back to back (round robin), and the llama.cpp
answers run last. Reuses what `ragkb eval bench` (/tmp/ragkb-bench) and `ragkb eval retrieval`
(/tmp/ragkb-eval) left on disk:

    python eval/latency.py --save eval/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ragkb.answer import Answerer
from ragkb.config import Settings
from ragkb.eval.bench import peak_rss_mb
from ragkb.eval.beir import load_beir
from ragkb.eval.metrics import latency_summary
from ragkb.llm import NoGenerator, resolve_backend
from ragkb.weights import embedding_choice, load_embedder
from ragkb.retrieve import Retriever
from ragkb.runtime import Runtime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=Path("/work/shared/data/beir/scifact"))
    parser.add_argument("--bench-home", type=Path, default=Path("/tmp/ragkb-bench"))
    parser.add_argument("--eval-home", type=Path, default=Path("/tmp/ragkb-eval"))
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--llm-questions", type=int, default=10)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    questions = list(load_beir(args.dataset, "test").queries.values())[: args.questions]
    out: dict = {"questions": len(questions), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}

    from llama_index.core import VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    small = Settings(home=(args.bench_home / "ragkb-home").resolve())
    large = Settings(home=args.eval_home.resolve(), chunk_words=100_000)
    large_dbsf = large.model_copy(update={"fusion": "dbsf", "prefetch_k": 100})
    embedder = load_embedder(small)
    small_rt = Runtime(small, "bench", embedder=embedder, generator=NoGenerator())
    large_rt = Runtime(large, "beir-scifact-minilm-whole", embedder=embedder)
    out["points"] = {"bench (300 docs, 180-word chunks)": small_rt.store.count(), "scifact (5,183 whole docs)": large_rt.store.count()}
    retrievers = {
        "300 docs": Retriever(small_rt),
        "5,183 docs": Retriever(large_rt),
        "5,183 docs dbsf": Retriever(large_rt.derive(large_dbsf)),
    }
    client = QdrantClient(path=str(args.bench_home / "llamaindex-qdrant"))
    embed = HuggingFaceEmbedding(model_name=str(embedding_choice(small).path), device="cpu")
    index = VectorStoreIndex.from_vector_store(QdrantVectorStore(client=client, collection_name="bench"), embed_model=embed)
    li_retriever = index.as_retriever(similarity_top_k=5)
    answerer = Answerer(small_rt)

    cases = {
        "query embedding only (MiniLM, 1 question)": lambda q: embedder.encode_query(q),
        "ragkb retrieve hybrid top 5, 300 docs": lambda q: retrievers["300 docs"].retrieve(q, top_k=5),
        "ragkb retrieve dense top 5, 300 docs": lambda q: retrievers["300 docs"].retrieve(q, top_k=5, mode="dense"),
        "ragkb retrieve sparse top 5, 300 docs": lambda q: retrievers["300 docs"].retrieve(q, top_k=5, mode="sparse"),
        "llama-index retrieve dense top 5, 300 docs": lambda q: li_retriever.retrieve(q),
        "ragkb retrieve hybrid top 5, 5,183 docs (RRF)": lambda q: retrievers["5,183 docs"].retrieve(q, top_k=5),
        "ragkb retrieve hybrid top 5, 5,183 docs (DBSF p100)": lambda q: retrievers["5,183 docs dbsf"].retrieve(q, top_k=5),
        "ragkb retrieve dense top 5, 5,183 docs": lambda q: retrievers["5,183 docs"].retrieve(q, top_k=5, mode="dense"),
        "ragkb answer, backend none, 300 docs": lambda q: answerer.ask(q),
    }
    for case in cases.values():  # warm every path once
        case(questions[0])
    times: dict[str, list[float]] = {name: [] for name in cases}
    for question in questions:
        for name, case in cases.items():
            started = time.perf_counter()
            case(question)
            times[name].append((time.perf_counter() - started) * 1000)
    out["latency_ms"] = {name: latency_summary(values) for name, values in times.items()}
    out["rss_mb_after_queries"] = peak_rss_mb()

    llm_settings = small.model_copy(update={"llm_backend": "llamacpp"})
    generator = resolve_backend(llm_settings)
    llm = Answerer(small_rt.derive(llm_settings, generator=generator))
    started = time.perf_counter()
    llm.ask(questions[0])
    first = (time.perf_counter() - started) * 1000
    results = [llm.ask(q) for q in questions[1 : args.llm_questions + 1]]
    out["latency_ms"][f"ragkb answer, backend {generator.name}, 300 docs"] = {
        **latency_summary([r.timings_ms["total"] for r in results]),
        "generate_p50": latency_summary([r.timings_ms.get("generate", 0.0) for r in results])["p50"],
        "answer_words_mean": round(sum(len(r.answer.split()) for r in results) / len(results), 1),
        "first_call_incl_model_load_ms": round(first, 1),
        "questions": len(results),
    }
    out["rss_mb_after_llamacpp"] = peak_rss_mb()
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    small_rt.close()
    large_rt.close()
    client.close()
    text = json.dumps(out, indent=2)
    if args.save:
        args.save.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
