"""Answer quality on SQuAD-format QA (PolicyQA): do an answer's citations include the gold passage?

Each paragraph of the chosen documents becomes one .txt file ingested through the normal file
pipeline, so the gold passage of a question is the file holding the paragraph that contains its
answer span. A citation "hits" when it comes from that file (or carries the same text, since
identical paragraphs are stored once). When the same question is annotated on several paragraphs
of one document, each of them is a gold passage. For backend `none` the citations are the retrieved
passages; for a generating backend they are the passages the answer actually cites.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.eval.metrics import latency_summary


@dataclass(frozen=True)
class QAItem:
    question: str
    answers: tuple[str, ...]
    gold_paths: frozenset[str]
    gold_texts: tuple[str, ...]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def load_squad_subset(path: Path, titles: int, folder: Path) -> tuple[list[QAItem], int]:
    """Write the paragraphs of the first `titles` articles as files; returns questions and file count."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"][:titles]
    folder.mkdir(parents=True, exist_ok=True)
    asked: list[tuple[str, tuple[str, ...], str, str, str]] = []  # question, answers, article, file, context
    files = 0
    for article in data:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", article.get("title") or "doc").strip("-").lower()
        for number, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            if not context.strip():
                continue
            file = folder / f"{slug}-p{number:03d}.txt"
            file.write_text(context + "\n", encoding="utf-8")
            files += 1
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa.get("answers", []) if a.get("text"))
                if answers:
                    asked.append((qa["question"], answers, slug, str(file.resolve()), context))
    # PolicyQA asks the same question of several paragraphs of one policy: each of them holds an
    # annotated answer span, so each is a gold passage for that question on that policy.
    gold: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for question, _, slug, file_path, context in asked:
        gold.setdefault((_norm(question), slug), []).append((file_path, context))
    items = []
    for question, answers, slug, _, _ in asked:
        passages = gold[(_norm(question), slug)]
        items.append(QAItem(question, answers, frozenset(p for p, _ in passages), tuple(c for _, c in passages)))
    return items, files


def _sample(items: list[QAItem], n: int) -> list[QAItem]:
    """Every k-th question, so a sample spans all documents; deterministic."""
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _hit(citation: Any, item: QAItem) -> bool:
    if citation.source in item.gold_paths:
        return True
    text = _norm(citation.text)
    return any(_norm(gold) in text for gold in item.gold_texts)


def evaluate_answers(
    dataset: Path,
    settings: Settings,
    titles: int = 2,
    questions: int = 60,
    backends: tuple[str, ...] = ("none", "llamacpp", "ollama"),
    llm_questions: int | None = None,
    embedder: Any = None,
    log: Any = print,
) -> dict[str, Any]:
    from ragkb.answer import Answerer
    from ragkb.ingest import Ingestor
    from ragkb.llm import resolve_backend
    from ragkb.runtime import Runtime

    folder = settings.home / "policyqa-docs"
    items, files = load_squad_subset(dataset, titles, folder)
    sample = _sample(items, questions)
    collection = f"qa-{Path(dataset).stem}-{titles}"
    runtime = Runtime(settings, collection, embedder=embedder)
    results: dict[str, Any] = {}
    try:
        ingest = Ingestor(runtime).run([folder]).to_dict()
        log(f"{files} passages ingested ({ingest['added']} added, {ingest['unchanged']} unchanged); {len(sample)} of {len(items)} questions")
        for backend in backends:
            backend_settings = settings.model_copy(update={"llm_backend": backend})
            generator = resolve_backend(backend_settings)
            answerer = Answerer(runtime.derive(backend_settings, generator=generator))
            asked = sample if backend == "none" or llm_questions is None else _sample(sample, llm_questions)
            probe = answerer.ask(asked[0].question)  # loads the model; an unreachable server fails here
            if probe.warnings and not probe.answer:
                results[backend] = {"backend": generator.name, "unavailable": probe.warnings[0]}
                log(f"{backend}: unavailable: {probe.warnings[0]}")
                continue
            hits = retrieved = answered = flagged = 0
            latencies: list[float] = []
            errors: list[str] = []
            examples: list[dict[str, Any]] = []
            started = time.perf_counter()
            for item in asked:
                result = answerer.ask(item.question)
                if result.warnings and not result.answer:
                    errors.append(result.warnings[0])
                latencies.append(result.timings_ms["total"])
                hits += any(_hit(c, item) for c in result.citations)
                retrieved += any(_hit(c, item) for c in result.passages)
                answered += any(_norm(a) in _norm(result.answer) for a in item.answers)
                flagged += result.flagged
                if len(examples) < 3:
                    examples.append({"question": item.question, "gold": item.answers[0], "answer": result.answer[:300],
                                     "cited": [Path(c.source).name for c in result.citations]})
            n = len(asked)
            results[backend] = {
                "backend": generator.name,
                "questions": n,
                "citations_include_gold": round(hits / n, 3),
                "gold_in_retrieved_top_k": round(retrieved / n, 3),
                "answer_contains_gold_span": round(answered / n, 3) if backend != "none" else None,
                "flagged_no_valid_citation": round(flagged / n, 3),
                "latency_ms": latency_summary(latencies),
                "seconds": round(time.perf_counter() - started, 1),
                "errors": len(errors),
                "examples": examples,
            }
            log(f"{backend}: {results[backend]['citations_include_gold']:.3f} of answers cite the gold passage")
    finally:
        runtime.close()
    return {
        "dataset": str(dataset),
        "documents": titles,
        "passages": files,
        "questions_available": len(items),
        "top_k": settings.top_k,
        "chunk_words": settings.chunk_words,
        "ingest": ingest,
        "results": results,
    }
