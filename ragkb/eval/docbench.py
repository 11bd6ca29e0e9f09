"""Documentation benchmark: questions written from real manuals (PDF and HTML), scored on what a
reader of a cited answer needs -- the right file, a passage that holds the answer, and a citation
(section, printed page) that leads back to it.

Each question (eval/docbench_questions.jsonl) names its gold file, the heading it sits under, for
PDFs the printed page label and the physical page, and `evidence`: a short verbatim span of the
manual that answers it. A retrieved passage *contains the answer* when it comes from the gold file
and holds the whole evidence (after `normalise`); two passages that each hold half do not count,
since a reader shown either one would not see the answer.

Per system, over the top 5 passages:
* file hit@1 / hit@5: the gold file is the first passage's file / among the five;
* passage@5: one of the five contains the answer;
* ragkb only, for the best-ranked passage that contains the answer (the "cited passage"): its
  section names the gold heading (`heading_key`), its page is the printed page label (PDFs).
The baseline is `LlamaIndexBaseline` (library defaults) on the same files and embedding model.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkb.config import Settings

TOP_K = 5
COLLECTION = "docbench"
GOALS = {"passage@5": 0.85, "section_correct": 0.90, "page_correct": 0.90}
_HOME_MARK = ".docbench-home"
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‐": "-", "‑": "-", "–": "-", "—": "-", "−": "-"})
_TAG = re.compile(r"<[^>]+>")
_NUMBERING = re.compile(r"^(?:(?:chapter|section|appendix)\s+)?(?:\d+|[a-z])(?:\.\d+)*\.?\s+")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    style: str  # "paraphrased" (a user's words) or "literal" (the manual's words)
    file: str  # relative to the corpus root
    section: str  # the innermost heading the evidence sits under
    evidence: str  # verbatim span of the manual that answers the question
    page_label: str | None = None  # printed page label (PDFs)
    page: int | None = None  # physical page, 1-based (PDFs)
    kind: str = "fact"  # fact | definition | admonition | procedure

    @property
    def format(self) -> str:
        return "pdf" if self.file.lower().endswith(".pdf") else "html"


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, reduced to what scoring needs."""

    file: str | None  # relative to the corpus root; None when outside it
    text: str
    section: str | None = None
    page: int | None = None  # physical page
    page_label: str | None = None  # printed page label, where the passage carries one

    @property
    def printed_page(self) -> str | None:
        """The page a citation of this passage shows: its label, else its page number."""
        if self.page_label is not None:
            return self.page_label
        return None if self.page is None else str(self.page)


def load_questions(path: Path) -> list[Question]:
    """The question set; refuses duplicates, unknown styles and PDF questions without pages."""
    questions: list[Question] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            question = Question(**json.loads(line))
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from exc
        if question.style not in ("paraphrased", "literal"):
            raise ValueError(f"{path}:{number}: style must be paraphrased or literal")
        if question.format == "pdf" and (question.page_label is None or question.page is None):
            raise ValueError(f"{path}:{number}: a PDF question needs page_label and page")
        questions.append(question)
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate question ids")
    return questions


def normalise(text: str) -> str:
    """Text as compared for containment: markup and entities removed (a raw-HTML chunk still
    holds its words), Unicode compatibility forms, typographic quotes and dashes as ASCII, case
    folded, and only letters and digits kept, so PDF extraction's spacing quirks and a parser's
    punctuation (the ": " ragkb puts between a definition term and its description) neither
    hide nor fake an answer while every letter and digit of the evidence must still be there,
    in order."""
    text = html.unescape(_TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def contains(passage: str, evidence: str) -> bool:
    return normalise(evidence) in normalise(passage)


def heading_key(section: str | None) -> str:
    """A heading as compared: the innermost part of a breadcrumb ("A > B"), without its
    numbering ("5.6.1", "A.2", "Chapter 3"), dot leaders or a trailing colon."""
    if not section:
        return ""
    text = unicodedata.normalize("NFKC", section).translate(_QUOTES).casefold()
    text = re.split(r"\s+[>›»]\s+", text)[-1]
    text = re.sub(r"(?:\s*\.){2,}\s*$", "", " ".join(text.split()))
    return _NUMBERING.sub("", text).rstrip(" :")


def answer_rank(question: Question, hits: Sequence[Hit], k: int = TOP_K) -> int | None:
    """1-based rank of the first of the top k passages that is from the gold file and contains
    the evidence."""
    for rank, hit in enumerate(hits[:k], 1):
        if hit.file == question.file and contains(hit.text, question.evidence):
            return rank
    return None


def file_hit(question: Question, hits: Sequence[Hit], k: int) -> bool:
    return any(hit.file == question.file for hit in hits[:k])


def score_question(question: Question, hits: Sequence[Hit], cites: bool) -> dict[str, Any]:
    """One question's row; `cites` adds the section/page checks of the cited passage."""
    rank = answer_rank(question, hits)
    row: dict[str, Any] = {
        "id": question.id,
        "file_hit@1": file_hit(question, hits, 1),
        "file_hit@5": file_hit(question, hits, TOP_K),
        "answer_rank": rank,
        "top_files": [hit.file for hit in hits[:TOP_K]],
    }
    if cites and rank is not None:
        cited = hits[rank - 1]
        row["cited_section"] = cited.section
        row["section_correct"] = heading_key(cited.section) == heading_key(question.section)
        if question.format == "pdf":
            row["cited_page"] = cited.printed_page
            row["page_correct"] = cited.printed_page == question.page_label
            row["physical_page_correct"] = cited.page == question.page
    return row


def _share(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [bool(row[key]) for row in rows if key in row]
    return round(sum(values) / len(values), 4) if values else None


def summarise(questions: Sequence[Question], rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Shares over all questions and per split (style, format, kind). Section and page shares are
    over cited passages, i.e. questions whose answer passage is in the top 5."""
    by_id = {q.id: q for q in questions}
    splits: dict[str, Callable[[Question], bool]] = {"all": lambda q: True}
    for style in ("paraphrased", "literal"):
        splits[style] = lambda q, s=style: q.style == s
    for fmt in ("pdf", "html"):
        splits[fmt] = lambda q, f=fmt: q.format == f
    for kind in sorted({q.kind for q in questions}):
        splits[f"kind={kind}"] = lambda q, k=kind: q.kind == k
    out: dict[str, dict[str, Any]] = {}
    for name, keep in splits.items():
        chosen = [row for row in rows if keep(by_id[row["id"]])]
        if not chosen:
            continue
        summary: dict[str, Any] = {
            "questions": len(chosen),
            "file_hit@1": _share(chosen, "file_hit@1"),
            "file_hit@5": _share(chosen, "file_hit@5"),
            "passage@5": round(sum(row["answer_rank"] is not None for row in chosen) / len(chosen), 4),
        }
        if any("section_correct" in row for row in chosen):
            summary["cited"] = sum("section_correct" in row for row in chosen)
            for key in ("section_correct", "page_correct", "physical_page_correct"):
                if any(key in row for row in chosen):
                    summary[key] = _share(chosen, key)
        out[name] = summary
    return out


# --- running the systems ---------------------------------------------------------------------------
def _relative(path: str | None, root: Path) -> str | None:
    try:
        return Path(path).resolve().relative_to(root).as_posix() if path else None
    except ValueError:
        return None


def fresh_home(home: Path, keep: bool) -> Path:
    """The benchmark's RAGKB_HOME, emptied unless `keep`; only a folder this benchmark made (or an
    empty one) is ever deleted, so a mistyped --home cannot wipe a real knowledge base."""
    home = home.expanduser().resolve()
    if home.exists() and not keep:
        if any(home.iterdir()) and not (home / _HOME_MARK).exists():
            raise ValueError(f"{home} is not empty and was not made by `ragkb eval docbench`; choose another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / _HOME_MARK).touch()
    return home


def run_ragkb(settings: Settings, corpus: Path, questions: Sequence[Question], log: Callable[[str], None]) -> dict[str, Any]:
    """ragkb's normal ingest of the corpus, then the Runtime's retriever (hybrid, top 5) per question."""
    from ragkb.ingest import Ingestor
    from ragkb.retrieve import Retriever
    from ragkb.runtime import Runtime

    with Runtime(settings, COLLECTION) as runtime:
        started = time.perf_counter()
        report = Ingestor(runtime).run([corpus])
        ingest = {**report.to_dict(), "seconds": round(time.perf_counter() - started, 1)}
        log(f"ragkb ingest: {report.added} files, {report.chunks} chunks, {len(report.failed)} failed in {ingest['seconds']}s")
        retriever = Retriever(runtime)
        rows = []
        for question in questions:
            passages = retriever.retrieve(question.question, top_k=TOP_K).passages
            # getattr: the same benchmark scores commits whose Passage has no page_label yet.
            hits = [Hit(_relative(p.source, corpus), p.text, p.section, p.page, getattr(p, "page_label", None)) for p in passages]
            rows.append(score_question(question, hits, cites=True))
    return {"ingest": ingest, "rows": rows}


def pdf_page_reader() -> Any:
    """llama-index-readers-file's PDFReader (0.7.0), which `pip install llama-index` brings: pypdf
    text, one Document per page with its page label. That package cannot be installed beside
    ragkb's pins (it needs pandas < 3 and striprtf < 0.0.27), and without it SimpleDirectoryReader
    reads a PDF's raw bytes as text -- a baseline nobody runs."""
    from llama_index.core.readers.base import BaseReader
    from llama_index.core.schema import Document
    from pypdf import PdfReader

    class PDFReader(BaseReader):
        def load_data(self, file: Path, extra_info: dict[str, Any] | None = None, **_: Any) -> list[Document]:
            pdf = PdfReader(file)
            return [
                Document(text=page.extract_text(), metadata={"page_label": label, "file_name": Path(file).name, **(extra_info or {})})
                for page, label in zip(pdf.pages, pdf.page_labels)
            ]

    return PDFReader()


def run_baseline(settings: Settings, corpus: Path, questions: Sequence[Question], log: Callable[[str], None]) -> dict[str, Any]:
    """llama-index with its defaults (SimpleDirectoryReader + its PDF reader, SentenceSplitter,
    dense top 5); HTML is read as text, as SimpleDirectoryReader does."""
    from ragkb.eval.bench import LlamaIndexBaseline
    from ragkb.weights import embedding_choice

    choice = embedding_choice(settings)
    if choice.path is None:
        raise RuntimeError(choice.reason)
    store = settings.home / "llamaindex-qdrant"
    shutil.rmtree(store, ignore_errors=True)  # from_documents adds to a collection: never to a previous run's
    baseline = LlamaIndexBaseline(choice.path, store)
    try:
        # The corpus has sub-folders and usually sits under ~/.cache, which the reader would skip as hidden.
        ingest = baseline.ingest(corpus, COLLECTION, recursive=True, exclude_hidden=False, file_extractor={".pdf": pdf_page_reader()})
        log(f"llama-index ingest: {ingest}")
        rows = []
        for question in questions:
            nodes = baseline.retrieve(question.question, TOP_K)
            hits = [Hit(_relative(n.node.metadata.get("file_path"), corpus), n.node.get_content()) for n in nodes]
            rows.append(score_question(question, hits, cites=False))
    finally:
        baseline.close()
    return {"ingest": ingest, "rows": rows}


def run_docbench(
    questions_path: Path, corpus: Path, settings: Settings, baseline: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Score ragkb (and the baseline) on the question set; the report eval/docbench*.json holds."""
    from ragkb.eval.debcorpus import PACKAGES, corpus_summary

    questions = load_questions(questions_path)
    missing = sorted({q.file for q in questions if not (corpus / q.file).is_file()})
    if missing:
        raise FileNotFoundError(f"gold files missing from the corpus {corpus}: {missing}")
    result: dict[str, Any] = {
        "corpus": {"packages": [f"{p.name}={p.version}" for p in PACKAGES], "files": corpus_summary(corpus)},
        "questions": {
            "total": len(questions),
            **{key: sum(getattr(q, attr) == key for q in questions)
               for attr, keys in (("style", ("paraphrased", "literal")), ("format", ("pdf", "html"))) for key in keys},
        },
        "top_k": TOP_K,
        "goals": GOALS,
        "settings": {"chunk_words": settings.chunk_words, "chunk_overlap_words": settings.chunk_overlap_words,
                     "fusion": settings.fusion, "embed_backend": settings.embed_backend},
        "systems": {},
    }
    runs = {"ragkb": run_ragkb}
    if baseline:
        runs["llama-index"] = run_baseline
    for name, run in runs.items():
        log(f"running {name}")
        outcome = run(settings, corpus, questions, log)
        result["systems"][name] = {"ingest": outcome["ingest"], "metrics": summarise(questions, outcome["rows"]), "rows": outcome["rows"]}
    return result
