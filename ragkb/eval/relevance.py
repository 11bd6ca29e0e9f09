"""Does a retrieval score say "nothing here is about this question"? Answerable questions
(PolicyQA, asked over the policies ingested) against questions the corpus cannot answer
(PubMedQA), comparing the fused hybrid score of the best passage with its dense cosine
(`Passage.relevance`), and the thresholds on the cosine that keep a given share of the
answerable questions (the calibration of Settings.min_relevance: use a dev split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ragkb.config import Settings
from ragkb.eval.answers import load_squad_subset, load_unanswerable, spread_sample

KEPT_TARGETS = (0.95, 0.97, 0.99)


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Probability that an answerable question outscores an unanswerable one (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    pos = np.asarray(positives)[:, None]
    neg = np.asarray(negatives)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def thresholds(positives: list[float], negatives: list[float], shipped: float) -> list[dict[str, float]]:
    """For each share of answerable questions to keep: the cut-off and the share of
    unanswerable questions it turns away; last, the same two shares at the shipped cut-off."""
    rows = []
    for kept in KEPT_TARGETS:
        cut = float(np.quantile(positives, 1 - kept))
        rows.append({"answerable_kept": kept, "threshold": round(cut, 4),
                     "unanswerable_refused": round(float(np.mean(np.asarray(negatives) < cut)), 3)})  # fmt: skip
    rows.append({"answerable_kept": round(float(np.mean(np.asarray(positives) >= shipped)), 3), "threshold": shipped,
                 "unanswerable_refused": round(float(np.mean(np.asarray(negatives) < shipped)), 3)})  # fmt: skip
    return rows


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {"p10": round(float(np.quantile(array, 0.1)), 4), "median": round(float(np.median(array)), 4),
            "p90": round(float(np.quantile(array, 0.9)), 4)}  # fmt: skip


def relevance_separation(
    dataset: Path,
    unanswerable: Path,
    settings: Settings,
    titles: int = 20,
    questions: int = 600,
    unanswerable_questions: int = 300,
    split: str = "dev",
    log: Any = print,
) -> dict[str, Any]:
    from ragkb.ingest import Ingestor
    from ragkb.retrieve import Retriever
    from ragkb.runtime import Runtime

    folder = settings.home / f"qa-{Path(dataset).stem}-docs"
    items, files = load_squad_subset(dataset, titles, folder)
    asked = spread_sample(items, questions)
    negatives = load_unanswerable(unanswerable, unanswerable_questions, split)
    runtime = Runtime(settings, f"qa-{Path(dataset).stem}-{titles}")
    try:
        ingest = Ingestor(runtime).run([folder]).to_dict()
        log(f"{files} passages ingested; {len(asked)} answerable, {len(negatives)} unanswerable questions")
        retriever = Retriever(runtime)
        best: dict[str, dict[str, list[float]]] = {"fused": {"yes": [], "no": []}, "relevance": {"yes": [], "no": []}}
        for group, batch in (("yes", asked), ("no", negatives)):
            for item in batch:
                passages = retriever.retrieve(item.question).passages
                best["fused"][group].append(max((p.score for p in passages), default=0.0))
                best["relevance"][group].append(max((p.relevance or 0.0 for p in passages), default=0.0))
    finally:
        runtime.close()
    signals = {
        name: {"auroc": round(auroc(v["yes"], v["no"]), 3), "answerable": _summary(v["yes"]),
               "unanswerable": _summary(v["no"])}  # fmt: skip
        for name, v in best.items()
    }
    signals["relevance"]["thresholds"] = thresholds(best["relevance"]["yes"], best["relevance"]["no"], settings.min_relevance)
    return {
        "dataset": str(dataset), "documents": titles, "passages": files, "split": split,
        "answerable": len(asked), "unanswerable": len(negatives), "reranked": settings.reranker_model is not None,
        "ingest_chunks": ingest.get("chunks"), "signals": signals,
    }  # fmt: skip
