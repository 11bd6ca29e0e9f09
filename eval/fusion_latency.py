"""Hybrid (max fusion) latency: payloads read for the kept hits only (ragkb now) vs payloads and
vectors read for every candidate of both lists (ragkb before 2fa4b89), in one process over the
same queries, interleaved so load hits both alike (eval/RESULTS.md §9).

    python eval/fusion_latency.py --size 100000 --workdir /tmp/fusion-latency [--index]

Builds a synthetic shard of `--size` points with store_bench's generator (kept in --workdir for
the next run), optionally builds its HNSW index, then times dense, sparse and both hybrid paths
with no filter, an ACL filter, and ACL + folder. Prints and saves JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import store_bench as sb  # noqa: E402

from ragkb.config import Settings  # noqa: E402
from ragkb.store import schema  # noqa: E402
from ragkb.store.edge import EdgeStore  # noqa: E402
from ragkb.store.fusion import fuse  # noqa: E402


def build(store: EdgeStore, size: int) -> None:
    synth = sb.Synth()
    store.ensure_collection(sb.DIM)
    for start in range(0, size, sb.BATCH):
        store.upsert(synth.points(start, min(sb.BATCH, size - start)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fusion-latency"))
    parser.add_argument("--index", action="store_true", help="build the HNSW index first (minutes at 100k)")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()

    settings = Settings(home=args.workdir / f"edge-{args.size}", collection=sb.COLLECTION)
    store = EdgeStore(settings, sb.COLLECTION)
    if store.count() != args.size:
        store.drop()
        store = EdgeStore(settings, sb.COLLECTION)
        build(store, args.size)
    if args.index:
        store.optimize()
    queries = sb.Synth().queries(args.queries)
    filters = {
        "none": [None] * len(queries),
        "acl": [schema.build_filter(q["groups"], None, settings) for q in queries],
        "acl_folder": [schema.build_filter(q["groups"], schema.Filters(folder=q["folder"]), settings) for q in queries],
    }
    depth = settings.prefetch_k

    def before(q: dict[str, Any], f: Any) -> Any:
        return fuse(store.search(q["dense"], None, depth, f, "dense"), store.search(q["dense"], q["sparse"], depth, f, "sparse"), 10)

    kinds = {
        "dense": lambda q, f: store.search(q["dense"], None, 10, f, "dense"),
        "sparse": lambda q, f: store.search(None, q["sparse"], 10, f, "sparse"),
        "hybrid_before": before,
        "hybrid_now": lambda q, f: store.search(q["dense"], q["sparse"], 10, f, "hybrid"),
    }
    latency: dict[str, list[float]] = {f"{k}/{name}": [] for k in kinds for name in filters}
    load_start = os.getloadavg()
    for n, q in enumerate(queries[:3] + queries):  # 3 warm-up queries
        for name, per_query in filters.items():
            f = per_query[(n - 3) % len(queries)]
            for kind, run in kinds.items():
                started = time.perf_counter()
                run(q, f)
                if n >= 3:
                    latency[f"{kind}/{name}"].append(time.perf_counter() - started)
    result = {
        "points": store.count(), "unindexed": store.unindexed_points(),
        "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in os.getloadavg()],
        "ms": {k: sb.summary(v) for k, v in latency.items()},
    }  # fmt: skip
    store.close()
    print(json.dumps(result, indent=1))
    if args.save:
        args.save.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
