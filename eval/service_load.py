"""Load test of `ragkb serve` (benchmark, not a test): many users at once while the nightly
ingest runs through the same service.

1. Base: SciFact abstracts written as files into group folders (two differently-marked copies,
   so ≥ 20,000 chunks at the chosen chunk size), each folder readable by one group.
2. `ragkb serve --no-ui` on that embedded home, users u0..u15, each in one group.
3. For `--seconds`, 16 client threads (one per user) send search and ask (answers with the
   configured backend: extractive or none) in turn; meanwhile an ingest job of `--nightly`
   new files runs through the same service.
4. Counted: errors (any non-2xx), cross-group passages (a passage from a folder the caller's
   group may not read), p50/p95 per endpoint, and the nightly ingest's chunks/s compared with
   the same kind of ingest on the idle service.

    python eval/service_load.py --workdir /tmp/ragkb-load --save eval/service_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
GROUPS = [f"g{i}" for i in range(8)]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1) if ordered else float("nan")


def write_corpus(dataset: Path, folder: Path, copies: int, limit: int | None) -> list[str]:
    titles = []
    with (dataset / "corpus.jsonl").open() as handle:
        docs = [json.loads(line) for line in handle if line.strip()][:limit]
    for copy in range(copies):
        for i, doc in enumerate(docs):
            group = GROUPS[i % len(GROUPS)]
            target = folder / group / f"copy{copy}" / f"{doc['_id']}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{doc.get('title', '')} (copy {copy})\n\n{doc.get('text', '')}\n")
            titles.append(doc.get("title", ""))
    return titles


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragkb.cli", *args], env=env, capture_output=True, text=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "beir" / "scifact")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="corpus documents per copy (default all 5,183)")
    parser.add_argument("--chunk-words", type=int, default=100)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--nightly", type=int, default=200)
    parser.add_argument("--backend", default="extractive")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    from service_process import Service

    work = args.workdir.resolve()
    corpus, nightly, home = work / "corpus", work / "nightly", work / "home"
    config = work / "ragkb.toml"
    out: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count()}
    if not corpus.exists():
        titles = write_corpus(args.dataset, corpus, args.copies, args.limit)
    else:
        titles = [p.stem for p in corpus.rglob("*.txt")]
    sources = "".join(f'[[sources]]\npath = "{corpus / g}"\ngroups = ["{g}"]\n\n' for g in GROUPS)
    sources += "".join(f'[[sources]]\npath = "{nightly / g}"\ngroups = ["{g}"]\n\n' for g in GROUPS)
    config.write_text(f'users_file = "{work / "users.toml"}"\nchunk_words = {args.chunk_words}\n\n' + sources)
    # The product's defaults, not the tests' (tests/conftest.py, imported by service_process,
    # pins the embedder to torch for speed of loading).
    product = {"RAGKB_CONFIG": str(config), "RAGKB_LLM_BACKEND": args.backend, "RAGKB_EMBED_BACKEND": "auto"}
    env = {**os.environ, "RAGKB_HOME": str(home), **product}
    tokens = {}
    for i in range(args.clients):
        cli(env, "users", "add", f"u{i}", "--password", "pw", "--group", GROUPS[i % len(GROUPS)])
        tokens[f"u{i}"] = cli(env, "users", "token", f"u{i}").stdout.strip()
    cli(env, "users", "add", "admin", "--password", "pw", "--group", "admin")
    admin = cli(env, "users", "token", "admin").stdout.strip()

    service = Service(home, env=product).wait_ready(900)
    try:
        http = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin}"}, timeout=3600)

        def run_job(paths: list[str]) -> dict[str, Any]:
            job_id = http.post("/v1/ingest", json={"paths": paths}).json()["job_id"]
            while (job := http.get(f"/v1/ingest/{job_id}").json())["state"] not in ("done", "failed"):
                time.sleep(1)
            return job

        started = time.perf_counter()
        base = run_job([str(corpus)])
        out["base_ingest"] = {**{k: base["summary"][k] for k in ("added", "chunks", "seconds")}, "wall_s": round(time.perf_counter() - started, 1)}
        print("base:", out["base_ingest"], file=sys.stderr)

        rng = random.Random(1)
        questions = [t for t in titles if t][:2000]

        def nightly_batch(tag: str) -> list[str]:
            for i in range(args.nightly):
                group = GROUPS[i % len(GROUPS)]
                target = nightly / group / tag / f"n{i}.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"Nightly {tag} note {i}\n\n" + " ".join(rng.choice(questions).split()) * 6 + "\n")
            return [str(nightly / g / tag) for g in GROUPS if (nightly / g / tag).exists()]

        idle = run_job(nightly_batch("idle"))["summary"]
        out["nightly_idle"] = {"chunks": idle["chunks"], "seconds": idle["seconds"], "chunks_per_s": round(idle["chunks"] / idle["seconds"], 2)}
        print("idle nightly:", out["nightly_idle"], file=sys.stderr)

        latencies: dict[str, list[float]] = {"search": [], "ask": []}
        errors: list[str] = []
        leaks: list[str] = []
        stop = time.monotonic() + args.seconds
        lock = threading.Lock()

        def client(user: str, group: str) -> None:
            with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=120) as mine:
                local = random.Random(user)
                turn = 0
                while time.monotonic() < stop:
                    endpoint = "search" if turn % 2 == 0 else "ask"
                    body = {"query": local.choice(questions)} if endpoint == "search" else {"question": local.choice(questions)}
                    began = time.perf_counter()
                    try:
                        response = mine.post(f"/v1/{endpoint}", json=body)
                    except httpx.HTTPError as exc:
                        with lock:
                            errors.append(f"{endpoint}: {exc}")
                        continue
                    elapsed = (time.perf_counter() - began) * 1000
                    with lock:
                        if response.status_code != 200:
                            errors.append(f"{endpoint}: {response.status_code} {response.text[:200]}")
                        else:
                            latencies[endpoint].append(elapsed)
                            for p in response.json()["passages"]:
                                if f"/{group}/" not in p["source"]:
                                    leaks.append(f"{user}({group}) got {p['source']}")
                    turn += 1

        threads = [threading.Thread(target=client, args=(f"u{i}", GROUPS[i % len(GROUPS)])) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        time.sleep(5)
        loaded = run_job(nightly_batch("loaded"))["summary"]
        for thread in threads:
            thread.join()
        out["nightly_under_load"] = {"chunks": loaded["chunks"], "seconds": loaded["seconds"], "chunks_per_s": round(loaded["chunks"] / loaded["seconds"], 2)}
        out["nightly_under_load_vs_idle"] = round(out["nightly_under_load"]["chunks_per_s"] / out["nightly_idle"]["chunks_per_s"], 2)
        out["requests"] = {name: len(values) for name, values in latencies.items()}
        out["latency_ms"] = {name: {"p50": _pct(v, 50), "p95": _pct(v, 95), "mean": round(statistics.fmean(v), 1) if v else None} for name, v in latencies.items()}
        out["errors"] = len(errors)
        out["error_examples"] = errors[:5]
        out["cross_group_passages"] = len(leaks)
        out["leak_examples"] = leaks[:5]
        status = http.get("/v1/status").json()
        out["chunks_in_store"] = status["chunks"]
        out["embedding_runtime"] = status["embedding_runtime"]
        out["settings"] = {"clients": args.clients, "seconds": args.seconds, "backend": args.backend, "chunk_words": args.chunk_words}
    finally:
        service.stop()
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(out, indent=2)
    if args.save:
        args.save.write_text(text + "\n")
    print(text)
    return 0 if not out.get("errors") and not out.get("cross_group_passages") else 1


if __name__ == "__main__":
    raise SystemExit(main())
