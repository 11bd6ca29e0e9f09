"""Answer quality on SQuAD-format QA (PolicyQA), with questions the corpus cannot answer.

Each paragraph of the chosen documents becomes one .txt file, in one folder per document, ingested
through the normal file pipeline. An answerable question is asked through the real `Answerer`
(real hybrid retrieval), scoped by default to its document's folder (the product's folder
filter: "what does this policy say about ..."), or with `scope="all"` over every document. Its
gold spans are every annotated answer of the same question on that document. Unanswerable
questions (PubMedQA questions, asked of privacy policies) are asked over the whole corpus.

Per backend:
* gold-span coverage: share of the gold answer's tokens (SQuAD normalisation) found in the
  answer, best over the gold spans; `covered_80` = share of questions with coverage >= 0.8;
* answer length in words (citation markers excluded), abstentions ("I don't know");
* cited sentences whose cited passage contains them (verbatim, case and spacing aside), and
  those the passage supports (ragkb.guards' content-word test);
* abstention and flag rates on unanswerable questions; p50/p95 latency.

The extractive selector's weights and threshold are chosen on a dev split by
`ragkb.eval.calibration.tune_extractive`.
"""

from __future__ import annotations

import json
import re
import statistics
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.eval.metrics import latency_summary, percentile

NO_ANSWER = "I don't know based on the available documents."
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_FOOTNOTE = re.compile(r"\[\d+(?:\s*[,\u2013-]\s*\d+)*\]")


@dataclass(frozen=True)
class QAItem:
    question: str
    answers: tuple[str, ...]
    gold_paths: frozenset[str]
    gold_texts: tuple[str, ...]
    folder: str = ""  # the document's folder: the scope of the question
    answerable: bool = True


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title or "doc").strip("-").lower() or "doc"


def load_squad_subset(path: Path, titles: int, folder: Path) -> tuple[list[QAItem], int]:
    """Write the paragraphs of the first `titles` articles as files (one folder per article);
    returns one item per distinct question of an article, and the file count."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"][:titles]
    folder.mkdir(parents=True, exist_ok=True)
    order: list[tuple[str, str]] = []
    asked: dict[tuple[str, str], dict[str, Any]] = {}
    files = 0
    for article in data:
        slug = _slug(article.get("title") or "doc")
        article_folder = folder / slug
        article_folder.mkdir(parents=True, exist_ok=True)
        for number, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            if not context.strip():
                continue
            file = article_folder / f"p{number:03d}.txt"
            if not file.exists() or file.read_text(encoding="utf-8") != context + "\n":
                file.write_text(context + "\n", encoding="utf-8")
            files += 1
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                if not answers:
                    continue
                key = (_norm(qa["question"]), slug)
                if key not in asked:
                    order.append(key)
                    asked[key] = {"question": qa["question"], "answers": [], "paths": [], "texts": [],
                                  "folder": str(article_folder.resolve())}  # fmt: skip
                entry = asked[key]
                entry["answers"].extend(a for a in answers if a not in entry["answers"])
                if str(file.resolve()) not in entry["paths"]:
                    entry["paths"].append(str(file.resolve()))
                    entry["texts"].append(context)
    items = [
        QAItem(e["question"], tuple(e["answers"]), frozenset(e["paths"]), tuple(e["texts"]), e["folder"])
        for e in (asked[key] for key in order)
    ]
    return items, files


def load_unanswerable(path: Path, count: int, split: str = "test") -> list[QAItem]:
    """PubMedQA questions (ori_pqal.json): `test` = the ids of test_ground_truth.json next to
    it, `dev` = the others, so calibration never sees the questions reported on."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    truth = Path(path).with_name("test_ground_truth.json")
    test_ids = set(json.loads(truth.read_text(encoding="utf-8"))) if truth.exists() else set(list(data)[::2])
    ids = [i for i in data if (i in test_ids) == (split == "test")]
    questions = [data[i]["QUESTION"] for i in ids]
    return [QAItem(q, (), frozenset(), (), "", answerable=False) for q in spread_sample(questions, count)]


def spread_sample(items: list[Any], n: int) -> list[Any]:
    """Every k-th item, so a sample spans all documents; deterministic."""
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _hit(citation: Any, item: QAItem) -> bool:
    if citation.source in item.gold_paths:
        return True
    text = _norm(citation.text)
    return any(_norm(gold) in text for gold in item.gold_texts)


# --- answer metrics ---------------------------------------------------------------------------
def squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, split on spaces."""
    text = _CITATION.sub(" ", text.lower())
    text = "".join(" " if ch in string.punctuation or ch in "\u201c\u201d\u2019\u2018\u2026" else ch for ch in text)
    return [t for t in text.split() if t not in ("a", "an", "the")]


def gold_coverage(answer: str, golds: tuple[str, ...]) -> float:
    """Share of the gold answer's tokens that occur in the answer, best over the gold spans."""
    words = set(squad_tokens(answer))
    best = 0.0
    for gold in golds:
        tokens = squad_tokens(gold)
        if tokens:
            best = max(best, sum(t in words for t in tokens) / len(tokens))
    return best


def answer_words(answer: str) -> int:
    """Words as a reader counts them: citation markers and stray punctuation are not words."""
    return sum(any(ch.isalnum() for ch in token) for token in _CITATION.sub(" ", answer).split())


def _plain(text: str) -> str:
    return " ".join(_FOOTNOTE.sub(" ", text).lower().split())


def cited_sentences(answer: str, passages: list[Any]) -> tuple[int, int, int]:
    """(cited sentences, contained verbatim in a cited passage, supported by a cited passage).

    The sentence a citation group cites is the last sentence of the text since the previous
    group ("A [1]. B [2]." cites A with [1], B with [2]); an uncited sentence is not counted."""
    from ragkb.guards import SUPPORT_THRESHOLD, supports
    from ragkb.sentences import split_sentences

    total = contained = supported = 0
    groups = list(re.finditer(r"(?:\s*\[\d+(?:\s*,\s*\d+)*\])+", answer))
    previous = 0
    for group in groups:
        before = answer[previous : group.start()]
        previous = group.end()
        found = split_sentences(before.strip(" \t\n.!?;,"))
        if not found:
            continue
        claim = found[-1].text
        numbers = [int(x) for x in re.findall(r"\d+", group.group()) if 1 <= int(x) <= len(passages)]
        if not numbers or not re.search(r"\w", claim):
            continue
        total += 1
        parts = [p.strip(" .!?;,") for p in claim.split("\u2026") if p.strip(" .!?;,")]
        texts = [_plain(passages[n - 1].text) for n in numbers]
        if any(all(_plain(part) in text for part in parts) for text in texts):
            contained += 1
        if any(supports(claim, passages[n - 1].text) >= SUPPORT_THRESHOLD for n in numbers):
            supported += 1
    return total, contained, supported


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def _words_summary(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"mean": None, "median": None, "p90": None, "share_le_60": None}
    return {
        "mean": round(statistics.fmean(lengths), 1),
        "median": statistics.median(lengths),
        "p90": round(percentile([float(x) for x in lengths], 90), 1),
        "share_le_60": round(sum(x <= 60 for x in lengths) / len(lengths), 3),
    }


def score_backend(answerer: Any, asked: list[QAItem], unanswerable: list[QAItem], scope: str, log: Any) -> dict[str, Any]:
    from ragkb.retrieve import Filters

    answerable_rows: list[dict[str, Any]] = []
    unanswerable_rows: list[dict[str, Any]] = []
    totals = {"cited": 0, "contained": 0, "supported": 0}
    latencies: list[float] = []
    step_latencies: list[float] = []
    errors: list[str] = []
    examples: list[dict[str, Any]] = []
    started = time.perf_counter()
    for index, item in enumerate([*asked, *unanswerable]):
        filters = Filters(folder=item.folder) if item.answerable and scope == "policy" and item.folder else None
        result = answerer.ask(item.question, filters=filters)
        if result.warnings and not result.answer:
            errors.append(result.warnings[0])
        latencies.append(result.timings_ms["total"])
        step = result.timings_ms.get("generate", result.timings_ms.get("select"))
        if step is not None:
            step_latencies.append(step)
        abstained = result.answer.strip() == NO_ANSWER
        cited, contained, supported = cited_sentences(result.answer, result.passages)
        totals["cited"] += cited
        totals["contained"] += contained
        totals["supported"] += supported
        row = {"question": item.question, "answerable": item.answerable, "answer": result.answer[:600],
               "abstained": abstained, "flagged": result.flagged, "words": answer_words(result.answer),
               "cited_sentences": cited, "contained": contained, "supported": supported,
               "ms": result.timings_ms["total"], "standalone_question": result.standalone_question,
               "warnings": result.warnings}  # fmt: skip
        if item.answerable:
            row["coverage"] = 0.0 if abstained else gold_coverage(result.answer, item.answers)
            row["hit"] = any(_hit(c, item) for c in result.citations)
            row["retrieved"] = any(_hit(c, item) for c in result.passages)
            row["contains_span"] = any(_norm(a) in _norm(result.answer) for a in item.answers)
            answerable_rows.append(row)
        else:
            unanswerable_rows.append(row)
        if len(examples) < 4 or (not item.answerable and len(examples) < 6):
            examples.append({"question": item.question, "gold": item.answers[0] if item.answers else None,
                             "answer": result.answer[:400], "flagged": result.flagged,
                             "cited": [Path(c.source).name for c in result.citations]})  # fmt: skip
        if (index + 1) % 25 == 0:
            log(f"  {index + 1}/{len(asked) + len(unanswerable)} questions")
    n = len(answerable_rows)
    u = len(unanswerable_rows)
    rows = [*answerable_rows, *unanswerable_rows]
    shown = [r for r in answerable_rows if not r["abstained"]]
    coverages = [r["coverage"] for r in answerable_rows]
    report: dict[str, Any] = {
        "questions": n,
        "unanswerable_questions": u,
        "scope": scope,
        "gold_coverage_mean": round(statistics.fmean(coverages), 3) if coverages else None,
        "covered_80": _share(sum(c >= 0.8 for c in coverages), n),
        "covered_80_within_60_words": _share(sum(r["coverage"] >= 0.8 and r["words"] <= 60 for r in answerable_rows), n),
        "covered_100": _share(sum(c >= 1.0 for c in coverages), n),
        "answer_words": _words_summary([r["words"] for r in shown]),
        "abstained_answerable": _share(sum(r["abstained"] for r in answerable_rows), n),
        "flagged_answerable": _share(sum(r["flagged"] for r in answerable_rows), n),
        "cited_sentences": totals["cited"],
        "cited_sentences_contained": _share(totals["contained"], totals["cited"]),
        "cited_sentences_supported": _share(totals["supported"], totals["cited"]),
        "abstained_unanswerable": _share(sum(r["abstained"] for r in unanswerable_rows), u),
        # guards at work (generating backends): a repetition cut off, an answer withheld
        "cut_at_repetition": _share(sum(any("repeated itself" in w for w in r["warnings"]) for r in rows), len(rows)),
        "withheld_unsupported": _share(sum(any("was withheld" in w for w in r["warnings"]) for r in rows), len(rows)),
        "citations_removed": _share(sum(any(w.startswith("removed citation") for w in r["warnings"]) for r in rows), len(rows)),
        "flagged_unanswerable": _share(sum(r["flagged"] for r in unanswerable_rows), u),
        # Shown as a cited answer although the corpus cannot answer: neither abstained nor flagged.
        "unanswerable_shown_as_answer": _share(sum(not r["abstained"] and not r["flagged"] for r in unanswerable_rows), u),
        # Kept for comparison with the first version of this evaluation.
        "citations_include_gold": _share(sum(r["hit"] for r in answerable_rows), n),
        "gold_in_retrieved_top_k": _share(sum(r["retrieved"] for r in answerable_rows), n),
        "answer_contains_gold_span": _share(sum(r["contains_span"] for r in answerable_rows), n),
        "flagged_no_valid_citation": _share(sum(r["flagged"] for r in answerable_rows), n),
        "latency_ms": latency_summary(latencies),
        "answer_step_ms": latency_summary(step_latencies) if step_latencies else None,
        "seconds": round(time.perf_counter() - started, 1),
        "errors": len(errors),
        "examples": examples,
        "rows": rows,
    }
    return report


def evaluate_answers(
    dataset: Path,
    settings: Settings,
    titles: int = 2,
    questions: int = 60,
    backends: tuple[str, ...] = ("none", "extractive", "llamacpp", "ollama"),
    llm_questions: int | None = None,
    embedder: Any = None,
    log: Any = print,
    unanswerable: Path | None = None,
    unanswerable_questions: int = 0,
    unanswerable_split: str = "test",
    llm_unanswerable_questions: int | None = None,
    scope: str = "policy",
) -> dict[str, Any]:
    from ragkb.answer import Answerer
    from ragkb.ingest import Ingestor
    from ragkb.llm import resolve_backend
    from ragkb.runtime import Runtime

    folder = settings.home / f"qa-{Path(dataset).stem}-docs"
    items, files = load_squad_subset(dataset, titles, folder)
    sample = spread_sample(items, questions)
    negatives = load_unanswerable(unanswerable, unanswerable_questions, unanswerable_split) if unanswerable and unanswerable_questions else []
    collection = f"qa-{Path(dataset).stem}-{titles}"
    runtime = Runtime(settings, collection, embedder=embedder)
    results: dict[str, Any] = {}
    try:
        ingest = Ingestor(runtime).run([folder]).to_dict()
        log(f"{files} passages ingested ({ingest['added']} added, {ingest['unchanged']} unchanged); "
            f"{len(sample)} of {len(items)} questions, {len(negatives)} unanswerable")  # fmt: skip
        for backend in backends:
            backend_settings = settings.model_copy(update={"llm_backend": backend})
            generator = resolve_backend(backend_settings)
            answerer = Answerer(runtime.derive(backend_settings, generator=generator))
            llm = backend not in ("none", "extractive")
            asked = sample if not llm or llm_questions is None else spread_sample(sample, llm_questions)
            negative = negatives if not llm or llm_unanswerable_questions is None else spread_sample(negatives, llm_unanswerable_questions)
            probe = answerer.ask(asked[0].question)  # loads the model; an unreachable server fails here
            if probe.warnings and not probe.answer:
                results[backend] = {"backend": generator.name, "unavailable": probe.warnings[0]}
                log(f"{backend}: unavailable: {probe.warnings[0]}")
                continue
            log(f"{backend}: {len(asked)} answerable + {len(negative)} unanswerable questions")
            results[backend] = {"backend": generator.name, **score_backend(answerer, asked, negative, scope, log)}
            r = results[backend]
            log(f"{backend}: covered_80 {r['covered_80']}, abstained on unanswerable {r['abstained_unanswerable']}, "
                f"cited sentences contained {r['cited_sentences_contained']}")  # fmt: skip
    finally:
        runtime.close()
    return {
        "dataset": str(dataset),
        "documents": titles,
        "passages": files,
        "questions_available": len(items),
        "unanswerable": str(unanswerable) if unanswerable else None,
        "unanswerable_split": unanswerable_split if negatives else None,
        "top_k": settings.top_k,
        "chunk_words": settings.chunk_words,
        "extractive_min_score": settings.extractive_min_score,
        "ingest": ingest,
        "results": results,
    }
