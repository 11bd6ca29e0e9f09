"""Plots for eval/RESULTS.md from the JSON files the eval commands saved.

    python eval/plot.py            # reads eval/*.json, writes eval/*.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def _load(name: str) -> dict | None:
    path = HERE / name
    return json.loads(path.read_text()) if path.is_file() else None


def plot_retrieval(reports: list[tuple[str, dict]], out: Path) -> None:
    labels, values, colors = [], [], []
    for tag, report in reports:
        for result in report["results"]:
            if result["metrics"] is None:
                continue
            extra = ""
            if "hybrid" in result["mode"]:
                extra = f", {report['settings']['fusion'].upper()} p{report['settings']['prefetch_k']}"
            labels.append(f"ragkb {result['mode']}\n{tag}{extra}")
            values.append(result["metrics"]["ndcg@10"])
            colors.append("#1f77b4" if "hybrid" in result["mode"] else "#7fb3d5")
    for ref in reports[0][1]["references"]:
        if "ndcg@10" in ref:
            labels.append(ref["system"].replace(" (", "\n("))
            values.append(ref["ndcg@10"])
            colors.append("#bbbbbb")
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(labels)), 4.8))
    bars = ax.bar(range(len(labels)), values, color=colors)
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0.5, max(values) + 0.05)
    ax.set_ylabel("nDCG@10 (SciFact test, 300 queries)")
    ax.axhline(0.6874, color="#d62728", lw=0.8, ls="--")
    ax.text(len(labels) - 0.6, 0.676, "best published BM25 0.687", color="#d62728", fontsize=7, ha="right",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.set_title("Retrieval quality: measured (blue) vs published (grey)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_bench(bench: dict, out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    names = list(bench["ingest"])
    names = [n for n in names if "second run" not in n]
    docs = [bench["ingest"][n]["docs_per_s"] for n in names]
    chunks = [bench["ingest"][n]["chunks_per_s"] for n in names]
    x = range(len(names))
    b1 = left.bar([i - 0.2 for i in x], docs, 0.4, label="documents/s")
    b2 = left.bar([i + 0.2 for i in x], chunks, 0.4, label="chunks/s")
    left.bar_label(b1, fmt="%.2f", fontsize=8)
    left.bar_label(b2, fmt="%.2f", fontsize=8)
    pretty = {"ragkb": "ragkb files\n(default 180-word chunks)", "ragkb (750-word chunks)": "ragkb files\n(750-word chunks)"}
    left.set_xticks(list(x), [pretty.get(n, n.replace(" (", "\n(")) for n in names], fontsize=8)
    left.set_title(f"Ingest throughput, {bench['documents']} SciFact docs as .txt files")
    left.legend(fontsize=8)
    lat = {k: v for k, v in bench["latency_ms"].items() if "p50" in v and "llamacpp" not in k}
    keys = list(lat)
    y = range(len(keys))
    r1 = right.barh([i - 0.2 for i in y], [lat[k]["p50"] for k in keys], 0.4, label="p50")
    r2 = right.barh([i + 0.2 for i in y], [lat[k]["p95"] for k in keys], 0.4, label="p95")
    right.bar_label(r1, fmt="%.0f", fontsize=8)
    right.bar_label(r2, fmt="%.0f", fontsize=8)
    right.set_yticks(list(y), keys, fontsize=8)
    right.set_xlabel("ms per question")
    right.set_title("Query latency, 300-doc collection (LLM: RESULTS.md)")
    right.legend(fontsize=8)
    fig.suptitle(f"2 cores, no GPU; load average during run {bench.get('load_average_at_start')} -> {bench.get('load_average_at_end')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    runs = (
        ("whole docs", "scifact_test_whole.json"),
        ("whole docs", "scifact_test_whole_dbsf.json"),
        ("180-word chunks", "scifact_test_w180.json"),
    )
    reports = [(tag, r) for tag, name in runs if (r := _load(name))]
    if reports:
        plot_retrieval(reports, HERE / "scifact_ndcg.png")
        print("wrote eval/scifact_ndcg.png")
    bench = _load("bench.json")
    if bench:
        plot_bench(bench, HERE / "bench.png")
        print("wrote eval/bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
