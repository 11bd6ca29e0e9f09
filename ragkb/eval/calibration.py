"""Calibration of the extractive selector on a dev split (never on test): a grid over its
weights, margin and sentence count, each with the threshold that abstains on a target share of
unanswerable questions. Its own module because it is a tuning procedure, run rarely, while
`answers` is the evaluation reported in eval/RESULTS.md §10."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.eval.answers import QAItem, answer_words, gold_coverage, load_squad_subset, load_unanswerable, spread_sample


def tune_extractive(
    dataset: Path,
    settings: Settings,
    unanswerable: Path,
    titles: int = 20,
    questions: int = 600,
    unanswerable_questions: int = 300,
    targets: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95),
    embedder: Any = None,
    log: Any = print,
) -> dict[str, Any]:
    """Grid over the selector's weights, margin and sentence count on a dev split; for each, the
    lowest threshold that abstains on each target share of the (dev) unanswerable questions.
    The chosen configuration, per target: the shortest answers (mean words) among those within
    one point of the best share of answerable questions whose gold span is covered (>= 80% of
    its tokens) by an answer of at most 60 words."""
    from ragkb import extractive
    from ragkb.ingest import Ingestor
    from ragkb.retrieve import Filters, Retriever
    from ragkb.runtime import Runtime

    folder = settings.home / f"qa-{Path(dataset).stem}-docs"
    items, files = load_squad_subset(dataset, titles, folder)
    sample = spread_sample(items, questions)
    negatives = load_unanswerable(unanswerable, unanswerable_questions, "dev")
    runtime = Runtime(settings, f"qa-{Path(dataset).stem}-{titles}", embedder=embedder)
    features: list[tuple[QAItem, list[Any]]] = []
    try:
        Ingestor(runtime).run([folder])
        retriever = Retriever(runtime)
        started = time.perf_counter()
        for index, item in enumerate([*sample, *negatives]):
            filters = Filters(folder=item.folder) if item.answerable else None
            passages = retriever.retrieve(item.question, filters=filters).passages
            features.append((item, extractive.candidates(item.question, passages, runtime.embedder)))
            if (index + 1) % 100 == 0:
                log(f"  features: {index + 1}/{len(sample) + len(negatives)} ({time.perf_counter() - started:.0f}s)")
    finally:
        runtime.close()
    answerable = [(i, c) for i, c in features if i.answerable]
    negative = [(i, c) for i, c in features if not i.answerable]

    def best_scores(cands: list[tuple[QAItem, list[Any]]], config: Any) -> list[float]:
        return [max((c.score(config) for c in found), default=-1.0) for _, found in cands]

    grid: list[dict[str, Any]] = []
    for keyword_weight in (0.0, 0.15, 0.3, 0.5):
        for rank_weight in (0.0, 0.05, 0.1):
            probe = extractive.SelectorConfig(min_score=-9, keyword_weight=keyword_weight, rank_weight=rank_weight)
            negative_best = sorted(best_scores(negative, probe))
            for target in targets:
                # the lowest threshold under which `target` of the negatives' best sentences fall
                m = max(1, math.ceil(target * len(negative_best)))
                threshold = round(negative_best[m - 1] + 1e-4, 4)
                for margin in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0):
                    for max_sentences in (1, 2, 3):
                        config = extractive.SelectorConfig(threshold, keyword_weight, rank_weight, margin, max_sentences)
                        covered = covered_any = abstained = 0
                        lengths = []
                        for item, found in answerable:
                            selection = extractive.choose(found, config)
                            if selection.abstained:
                                abstained += 1
                                continue
                            words = answer_words(selection.answer)
                            lengths.append(words)
                            coverage = gold_coverage(selection.answer, item.answers)
                            covered += coverage >= 0.8 and words <= 60
                            covered_any += coverage >= 0.8
                        negative_abstained = sum(extractive.choose(found, config).abstained for _, found in negative)
                        grid.append({
                            "target_abstention": target, "keyword_weight": keyword_weight, "rank_weight": rank_weight,
                            "margin": margin, "max_sentences": max_sentences, "min_score": threshold,
                            "covered_80_within_60_words": round(covered / len(answerable), 3),
                            "covered_80": round(covered_any / len(answerable), 3),
                            "abstained_answerable": round(abstained / len(answerable), 3),
                            "abstained_unanswerable": round(negative_abstained / max(1, len(negative)), 3),
                            "mean_words": round(statistics.fmean(lengths), 1) if lengths else None,
                        })  # fmt: skip
    grid.sort(key=lambda row: (-row["covered_80_within_60_words"], row["mean_words"] or 0))
    best = {}
    for target in targets:
        rows = [row for row in grid if row["target_abstention"] == target]
        # the shortest answers among the configurations within one point of the best coverage
        top = rows[0]["covered_80_within_60_words"]
        best[str(target)] = min((r for r in rows if r["covered_80_within_60_words"] >= top - 0.01),
                                key=lambda r: (r["mean_words"] or 0, -r["covered_80_within_60_words"]))  # fmt: skip
    return {
        "dataset": str(dataset), "documents": titles, "passages": files, "answerable": len(answerable),
        "unanswerable": len(negative), "targets": list(targets), "best": best, "grid": grid,
    }  # fmt: skip

