"""Embedded store benchmark (issue 12, "Measure" item 1): qdrant-client local mode vs Qdrant Edge.

Synthetic points shaped like ragkb's: 384-dim random unit vectors; BM25 sparse vectors from a
Zipf-distributed synthetic vocabulary (50k terms, s=1.07, 60-140 tokens a chunk, ids hashed to
32 bits like ragkb.sparse, weights by ragkb's BM25 formula); schema payloads (`chunk_payload` +
`doc_payload`: ~500 chars of text, an `acl` among 10 groups, one or two locations under 30x5
folders). Queries go through the adapters ragkb uses (`Store`, `EdgeStore`) with the filters
`schema.build_filter` builds (a reader with 2 groups; the folder facet is a nested condition).

Each (backend, size) runs in its own child process, one after the other (peak RSS is per
child, and two heavy jobs never share the 2 cores); the machine's load average is recorded at
the start and end of each child and of the whole run. Qdrant Edge is measured before and after
`optimize()`; during optimize another thread keeps querying, to measure what a query waits.
With --background the index is built by `optimize_in_background()` (a child process on a copy,
then a swap) and the querying thread keeps a service's pace (`BACKGROUND_QUERY_GAP_S` between
queries): a back-to-back loop in the parent would starve the nice +10 child of CPU.

    python eval/store_bench.py                        # 20k and 100k both backends, 1M edge only
    python eval/store_bench.py --runs edge:20000 --queries 50 --out /tmp/quick.json
    nice -n 10 python eval/store_bench.py --runs edge:100000 --background --out eval/store_bench_background.json

Local mode is skipped at 1M: it is brute force in Python (hybrid + ACL ~6.6 s a query at 100k,
upsert ~8 min at 100k, everything in RAM), so 1M would take hours and ~10+ GB for no new fact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
VOCAB = 50_000
ZIPF_S = 1.07
GROUPS = [f"group{n}" for n in range(10)]
DEPTS, SUBS = 30, 5
CHUNKS_PER_DOC = 8
BATCH = 2048
COLLECTION = "bench"
KINDS = ("dense", "hybrid", "hybrid_acl", "hybrid_acl_folder")
# local mode at 100k: ~7 s a filtered hybrid query, so 10 questions; 1M: edge only, 50 questions,
# and a 30 min cap (optimize at 1M may not fit; whatever was measured before it is kept).
DEFAULT_RUNS = "edge:20000,local:20000,edge:100000,local:100000:10,edge:1000000:50:30"
BACKGROUND_QUERY_GAP_S = 0.05


# --- synthetic data ------------------------------------------------------------------------------
class Synth:
    """Deterministic points and queries for one size (same seed for both backends)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        self.p = ranks**-ZIPF_S
        self.p /= self.p.sum()
        # Queries use content words: not the 50 most frequent ranks (stop-word-like).
        q = self.p.copy()
        q[:50] = 0
        self.q = q / q.sum()
        self.ids = np.array([int.from_bytes(hashlib.blake2b(f"w{r}".encode(), digest_size=4).digest(), "little") for r in range(VOCAB)], dtype=np.int64)

    def points(self, start: int, count: int) -> list[Any]:
        from ragkb.sparse import AVG_DOC_TOKENS, B, K1
        from ragkb.store import schema
        from ragkb.store.qdrant import NewPoint

        dense = self.rng.standard_normal((count, DIM)).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        lengths = self.rng.integers(60, 141, size=count)
        tokens = self.rng.choice(VOCAB, size=int(lengths.sum()), p=self.p)
        out = []
        offset = 0
        shared_by_doc: dict[int, dict[str, Any]] = {}
        for i in range(count):
            n = start + i
            doc = n // CHUNKS_PER_DOC
            if doc not in shared_by_doc:
                shared_by_doc[doc] = self._doc_payload(doc)
            toks = tokens[offset : offset + lengths[i]]
            offset += lengths[i]
            uniq, tf = np.unique(toks, return_counts=True)
            norm = K1 * (1 - B + B * len(toks) / AVG_DOC_TOKENS)
            weights = tf * (K1 + 1) / (tf + norm)
            text = " ".join(f"w{t}" for t in toks[:90])
            payload = schema.chunk_payload(f"doc{doc}", n % CHUNKS_PER_DOC, text, 1 + n % 40, None, "text", shared_by_doc[doc])
            out.append(NewPoint(schema.point_id(f"doc{doc}", n % CHUNKS_PER_DOC), dense[i].tolist(), (self.ids[uniq].tolist(), weights.tolist()), payload))
        return out

    def _doc_payload(self, doc: int) -> dict[str, Any]:
        from ragkb.store import schema

        r = np.random.default_rng(doc)  # per doc, so a doc split across batches stays one doc
        roll = r.random()
        acl = None if roll < 0.1 else sorted(set(r.choice(GROUPS, size=1 if roll < 0.8 else 2).tolist()))
        locations = [schema.Location(f"/srv/docs/d{r.integers(DEPTS)}/s{r.integers(SUBS)}/doc{doc}.txt", acl)]
        if r.random() < 0.15:
            locations.append(schema.Location(f"/srv/docs/d{r.integers(DEPTS)}/shared/doc{doc}.txt", [str(r.choice(GROUPS))]))
        return schema.doc_payload(locations, "pdf" if doc % 3 else "docx")

    def queries(self, count: int) -> list[dict[str, Any]]:
        r = np.random.default_rng(12345)
        out = []
        for _ in range(count):
            dense = r.standard_normal(DIM)
            dense /= np.linalg.norm(dense)
            terms = np.unique(r.choice(VOCAB, size=int(r.integers(3, 7)), p=self.q))
            out.append({
                "dense": dense.tolist(),
                "sparse": (self.ids[terms].tolist(), [1.0] * len(terms)),
                "groups": sorted(set(r.choice(GROUPS, size=2, replace=False).tolist())),
                "folder": f"/srv/docs/d{r.integers(DEPTS)}",
            })
        return out


# --- one child: one backend, one size ------------------------------------------------------------
def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def disk_mb(folder: Path) -> tuple[float, float]:
    """Allocated and apparent size: the engine preallocates its WAL and mmap files sparsely
    (a 100-point shard: 131 MB apparent, 0.5 MB allocated), so only the first is disk used."""
    files = [f.stat() for f in folder.rglob("*") if f.is_file()]
    return round(sum(f.st_blocks * 512 for f in files) / 2**20, 1), round(sum(f.st_size for f in files) / 2**20, 1)


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies_s)
    return {
        "n": len(ms),
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


def run_queries(store: Any, settings: Any, queries: list[dict[str, Any]], warmup: int = 3) -> dict[str, Any]:
    """All four kinds per question, round robin, so load spikes hit every kind alike."""
    from ragkb.store import schema

    filters = []
    for q in queries:
        filters.append({
            "dense": None,
            "hybrid": None,
            "hybrid_acl": schema.build_filter(q["groups"], None, settings),
            "hybrid_acl_folder": schema.build_filter(q["groups"], schema.Filters(folder=q["folder"]), settings),
        })
    lat: dict[str, list[float]] = {kind: [] for kind in KINDS}
    hits: dict[str, int] = {kind: 0 for kind in KINDS}
    for n, (q, f) in enumerate(zip(queries[:warmup] + queries, filters[:warmup] + filters)):
        for kind in KINDS:
            mode = "dense" if kind == "dense" else "hybrid"
            t = time.perf_counter()
            result = store.search(q["dense"], q["sparse"], 10, f[kind], mode)
            if n >= warmup:
                lat[kind].append(time.perf_counter() - t)
                hits[kind] += len(result)
    return {kind: {**summary(lat[kind]), "mean_hits": round(hits[kind] / len(queries), 1)} for kind in KINDS}


def child(backend: str, size: int, queries: int, workdir: Path, out: Path, background: bool = False) -> None:
    from ragkb.config import Settings
    from ragkb.store.edge import EdgeStore
    from ragkb.store.qdrant import QdrantStore

    home = workdir / f"{backend}-{size}"
    if home.exists():
        shutil.rmtree(home)
    settings = Settings(home=home, collection=COLLECTION)
    result: dict[str, Any] = {"backend": backend, "size": size, "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    began = time.perf_counter()

    def save() -> None:
        result["peak_rss_mb"] = peak_rss_mb()
        result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        out.write_text(json.dumps(result, indent=1))

    def open_store() -> Any:
        return QdrantStore(settings, COLLECTION) if backend == "local" else EdgeStore(settings, COLLECTION)

    result["rss_baseline_mb"] = rss_mb()  # interpreter + ragkb + clients, before any store
    synth = Synth()
    store = open_store()
    store.ensure_collection(DIM)
    upsert_s = generate_s = 0.0
    for start in range(0, size, BATCH):
        t = time.perf_counter()
        points = synth.points(start, min(BATCH, size - start))
        generate_s += time.perf_counter() - t
        t = time.perf_counter()
        store.upsert(points)
        upsert_s += time.perf_counter() - t
    result.update(upsert_s=round(upsert_s, 2), upsert_points_per_s=round(size / upsert_s), generate_s=round(generate_s, 1), rss_after_upsert_mb=rss_mb())
    store.close()
    result["disk_mb"], result["disk_apparent_mb"] = disk_mb(home)

    t = time.perf_counter()
    store = open_store()
    count = store.count()
    result.update(open_s=round(time.perf_counter() - t, 2), count=count, rss_after_open_mb=rss_mb())
    assert count == size, (count, size)
    qs = synth.queries(queries)
    result["queries"] = run_queries(store, settings, qs)
    result["rss_serving_mb"] = rss_mb()
    save()
    if backend == "edge":
        # If the parent kills this child during optimize, these two say how far it got.
        result.update(phase="optimize", optimize_started_s=round(time.perf_counter() - began, 1))
        save()
        result["optimize"] = optimize_under_queries(store, settings, qs, background)
        result["phase"] = "after optimize"
        save()
        result["after_optimize"] = run_queries(store, settings, qs)
        store.close()
        t = time.perf_counter()
        store = open_store()
        store.count()
        result["open_after_optimize_s"] = round(time.perf_counter() - t, 2)
        result["disk_after_optimize_mb"], result["disk_after_optimize_apparent_mb"] = disk_mb(home)
    store.close()
    save()
    shutil.rmtree(home, ignore_errors=True)


def optimize_under_queries(store: Any, settings: Any, queries: list[dict[str, Any]], background: bool = False) -> dict[str, Any]:
    """optimize() (or optimize_in_background()) in this thread while another thread runs hybrid
    + ACL queries, back to back (or one every BACKGROUND_QUERY_GAP_S)."""
    from ragkb.store import schema

    done = threading.Event()
    started = threading.Event()
    during: list[tuple[float, float]] = []  # (start, latency)

    def querier() -> None:
        n = 0
        while not done.is_set():
            q = queries[n % len(queries)]
            n += 1
            t = time.perf_counter()
            store.search(q["dense"], q["sparse"], 10, schema.build_filter(q["groups"], None, settings), "hybrid")
            during.append((t, time.perf_counter() - t))
            started.set()
            if background:
                done.wait(BACKGROUND_QUERY_GAP_S)

    thread = threading.Thread(target=querier)
    thread.start()
    started.wait()
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    changed: Any = store.optimize_in_background() if background else store.optimize()
    t1 = time.perf_counter()
    done.set()
    thread.join()
    overlapping = [lat for start, lat in during if start + lat > t0 and start < t1]
    return {
        "mode": "background" if background else "in-thread",
        "seconds": round(t1 - t0, 1),
        "changed": f"{changed.outcome}: {changed.detail}" if background else changed,
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "queries_overlapping": len(overlapping),
        "max_query_wait_s": round(max(overlapping), 2) if overlapping else None,
        "queries_completed_inside": sum(1 for start, lat in during if start >= t0 and start + lat <= t1),
        "hybrid_acl_during": summary(overlapping) if overlapping else None,
    }


# --- the parent ----------------------------------------------------------------------------------
def table(results: list[dict[str, Any]]) -> str:
    rows = ["| backend | points | upsert s | open s | peak RSS MB | disk MB (allocated; apparent) | dense p50/p95 ms | hybrid p50/p95 | hybrid+ACL p50/p95 | hybrid+ACL+folder p50/p95 | load avg start->end |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cells(q: dict[str, Any]) -> list[str]:
        return [f"{q[k]['p50']:g} / {q[k]['p95']:g}" if k in q else "-" for k in KINDS]

    for r in results:
        if "queries" not in r:
            rows.append(f"| {r['backend']} | {r['size']:,} | {r.get('upsert_s', '-')} | - | {r.get('peak_rss_mb', '-')} | - | (did not finish: {r.get('error', '?')}) |||| |")
            continue
        load = f"{r['loadavg_start'][0]} -> {r['loadavg_end'][0]}"
        rows.append(f"| {r['backend']} | {r['size']:,} | {r['upsert_s']} | {r['open_s']} | {r['peak_rss_mb']} | {_disk(r, 'disk')} | " + " | ".join(cells(r["queries"])) + f" | {load} |")
        if "after_optimize" in r:
            o = r["optimize"]
            how = "background optimize" if o.get("mode") == "background" else "optimize"
            rows.append(f"| edge, after {how} ({o['seconds']} s; a concurrent query waited up to {o['max_query_wait_s']} s) | {r['size']:,} | | {r['open_after_optimize_s']} | | {_disk(r, 'disk_after_optimize')} | " + " | ".join(cells(r["after_optimize"])) + " | |")
        elif r.get("phase") == "optimize" and "error" in r:
            ran = round(r["wall_s"] - r["optimize_started_s"]) if "optimize_started_s" in r and "wall_s" in r else "?"
            rows.append(f"| edge, optimize did not finish ({r['error']}; it had run {ran} s) | {r['size']:,} | | | | | not measured |||| |")
    return "\n".join(rows)


def _disk(r: dict[str, Any], key: str) -> str:
    allocated = r.get(f"{key}_mb", "not measured")
    return f"{allocated}; {r[f'{key}_apparent_mb']}" if f"{key}_apparent_mb" in r else f"{allocated}"


def ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by = {(r["backend"], r["size"]): r for r in results if "queries" in r}
    for (backend, size), local in by.items():
        edge = by.get(("edge", size))
        if backend != "local" or edge is None:
            continue
        entry = {"upsert": round(local["upsert_s"] / edge["upsert_s"], 1), "open": round(local["open_s"] / edge["open_s"], 1)}
        for kind in KINDS:
            entry[f"{kind}_p50_before_optimize"] = round(local["queries"][kind]["p50"] / edge["queries"][kind]["p50"], 1)
            if "after_optimize" in edge:
                entry[f"{kind}_p50_after_optimize"] = round(local["queries"][kind]["p50"] / edge["after_optimize"][kind]["p50"], 1)
        out[f"local/edge at {size}"] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="backend:size,... run in this order")
    parser.add_argument("--queries", type=int, default=200, help="questions per kind for edge")
    parser.add_argument("--local-queries", type=int, default=20, help="questions per kind for local mode (seconds each at 100k)")
    parser.add_argument("--timeout-min", type=float, default=40.0, help="a child that runs longer is killed; its partial results are kept")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ragkb-store-bench"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "store_bench.json")
    parser.add_argument("--render", action="store_true", help="only recompute the table and ratios of --out")
    parser.add_argument("--resume", action="store_true", help="reuse the finished runs' results left in --workdir by an interrupted run")
    parser.add_argument("--background", action="store_true", help="edge: index with optimize_in_background() instead of optimize()")
    parser.add_argument("--child", nargs=4, metavar=("BACKEND", "SIZE", "QUERIES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, size, queries, out = args.child
        child(backend, int(size), int(queries), args.workdir, Path(out), args.background)
        return 0

    if args.render:
        report = json.loads(args.out.read_text())
        report["ratios"] = ratios(report["results"])
        report["table"] = table(report["results"])
        if "repeat" in report:
            report["repeat"]["table"] = table(report["repeat"]["results"])
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(report["table"])
        return 0

    import qdrant_client
    import qdrant_edge  # noqa: F401

    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "qdrant_client": qdrant_client.__version__ if hasattr(qdrant_client, "__version__") else _version("qdrant-client"),
                    "qdrant_edge_py": _version("qdrant-edge-py")},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "setup": {"dim": DIM, "vocab": VOCAB, "zipf_s": ZIPF_S, "groups": len(GROUPS), "folders": DEPTS * SUBS,
                  "prefetch_k": 100, "fusion": "dbsf", "limit": 10, "reader_groups": 2, "acl_default": "public",
                  "optimize": "optimize_in_background" if args.background else "optimize"},
        "results": [],
    }
    for spec in args.runs.split(","):
        backend, size, *extra = spec.split(":")  # backend:size[:questions[:timeout minutes]]
        queries = int(extra[0]) if extra else args.queries if backend == "edge" else args.local_queries
        timeout_min = float(extra[1]) if len(extra) > 1 else args.timeout_min
        part = args.workdir / f"{backend}-{size}.json"
        if args.resume and part.exists():
            done = json.loads(part.read_text())
            if "queries" in done and (backend != "edge" or "after_optimize" in done):
                print(f"== {backend} {int(size):,} points: reusing {part}", flush=True)
                report["results"].append(done)
                continue
        part.unlink(missing_ok=True)
        print(f"== {backend} {int(size):,} points ({queries} questions a kind), load {os.getloadavg()[0]:.2f}", flush=True)
        t = time.perf_counter()
        try:
            subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir), *(["--background"] if args.background else []),
                            "--child", backend, size, str(queries), str(part)], check=True, timeout=timeout_min * 60)  # fmt: skip
            error = None
        except subprocess.TimeoutExpired:
            error = f"killed after {timeout_min:g} min"
        except subprocess.CalledProcessError as exc:
            error = f"exit {exc.returncode}"
        result = json.loads(part.read_text()) if part.exists() else {"backend": backend, "size": int(size)}
        result["wall_s"] = round(time.perf_counter() - t, 1)
        if error:
            result["error"] = error
        report["results"].append(result)
        shutil.rmtree(args.workdir / f"{backend}-{size}", ignore_errors=True)
        print(json.dumps({k: v for k, v in result.items() if k not in ("queries", "after_optimize")}), flush=True)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["ratios"] = ratios(report["results"])
    report["table"] = table(report["results"])
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(report["table"])
    print(json.dumps(report["ratios"], indent=1))
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    sys.exit(main())
