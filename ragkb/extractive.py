"""Extractive answers: the one to three sentences of the retrieved passages that best answer the
question, quoted verbatim in passage order, each with the citation of the passage it comes from;
or "I don't know" when no sentence is close enough.

No model writes anything, so every citation is true by construction: a sentence is a span of one
passage (ragkb.sentences; it never spans two). Each sentence is scored by

    score = dense + KEYWORD_WEIGHT * keyword + RANK_WEIGHT / (1 + passage rank)

where `dense` is the cosine between the question and the sentence under the embedding model
retrieval has already loaded, `keyword` the IDF-weighted share of the question's content words
that the sentence contains (IDF over the candidate sentences), and the rank term prefers the
passages hybrid retrieval ranked first. The best sentence is kept when its score reaches
`min_score` (Settings.extractive_min_score); the next best are added, up to MAX_SENTENCES, while
they score within MARGIN of it and the answer stays within MAX_WORDS (a sentence that does not
fit is skipped for a shorter one). The weights, the margin and the threshold
were chosen on PolicyQA dev with unanswerable questions, never on test (eval/RESULTS.md, section
"Answers").
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragkb.sentences import Sentence, content_terms, split_sentences

NO_ANSWER = "I don't know based on the available documents."

KEYWORD_WEIGHT = 0.3
RANK_WEIGHT = 0.05
MARGIN = 0.3
MAX_SENTENCES = 3
MAX_WORDS = 60
MIN_WORDS = 4  # shorter "sentences" are headings, list numbers, table cells
# A web address makes a sentence a reference entry more often than an answer.
URL_PENALTY = 0.1
# Footnote markers of the document ("[17]", "[3, 4]") would read as ragkb citations: not quoted.
_FOOTNOTE = re.compile(r"\[\d+(?:\s*[,\u2013-]\s*\d+)*\]")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class SelectorConfig:
    min_score: float
    keyword_weight: float = KEYWORD_WEIGHT
    rank_weight: float = RANK_WEIGHT
    margin: float = MARGIN
    max_sentences: int = MAX_SENTENCES
    max_words: int = MAX_WORDS


@dataclass
class Candidate:
    passage: int  # 0-based index into the passages given
    sentence: Sentence
    terms: frozenset[str]
    dense: float = 0.0
    keyword: float = 0.0

    @property
    def quote(self) -> str:
        """The sentence as shown: the passage's text without its own footnote markers."""
        return " ".join(_FOOTNOTE.sub(" ", self.sentence.text).split())

    @property
    def words(self) -> int:
        return len(self.quote.split())

    def score(self, config: SelectorConfig) -> float:
        penalty = URL_PENALTY if _URL.search(self.sentence.text) else 0.0
        return self.dense + config.keyword_weight * self.keyword + config.rank_weight / (1 + self.passage) - penalty


@dataclass
class Selection:
    answer: str  # the quoted sentences with their [n], or NO_ANSWER
    chosen: list[Candidate] = field(default_factory=list)  # in passage order
    best_score: float | None = None
    reason: str = ""

    @property
    def abstained(self) -> bool:
        return not self.chosen

    @property
    def cited(self) -> list[int]:
        """1-based passage numbers, in the order of first citation."""
        seen: list[int] = []
        for candidate in self.chosen:
            if candidate.passage + 1 not in seen:
                seen.append(candidate.passage + 1)
        return seen


class _EmbeddingCache:
    """Sentence embeddings by text: the same passages come back for related questions."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, embedder: Any, texts: list[str]) -> np.ndarray:
        key = id(embedder)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if (key, t) not in self._items]
        if missing:
            vectors = embedder.encode_documents(missing, batch_size=64)
            with self._lock:
                for text, vector in zip(missing, vectors):
                    self._items[(key, text)] = np.asarray(vector, dtype=np.float32)
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        with self._lock:
            rows = []
            for text in texts:
                self._items.move_to_end((key, text))
                rows.append(self._items[(key, text)])
        return np.vstack(rows) if rows else np.zeros((0, 1), dtype=np.float32)


_cache = _EmbeddingCache(_CACHE_SIZE)


def candidates(question: str, passages: Sequence[Any], embedder: Any) -> list[Candidate]:
    """Every quotable sentence of the passages, scored against the question (dense and keyword).

    A sentence that repeats one of a better-ranked passage (overlapping chunks) is kept once; a
    continuation fragment at the start of a chunk (lower-case start) is not quotable."""
    found: list[Candidate] = []
    seen: set[str] = set()
    for index, passage in enumerate(passages):
        for position, sentence in enumerate(split_sentences(passage.text)):
            key = sentence.text.lower()
            if key in seen or len(sentence.text.split()) < MIN_WORDS or sentence.text.endswith(":"):
                continue  # a sentence ending in ":" announces what it does not say
            if position == 0 and getattr(passage, "chunk_index", 0) > 0 and sentence.text[0].islower():
                continue
            seen.add(key)
            found.append(Candidate(index, sentence, frozenset(content_terms(sentence.text))))
    if not found:
        return found
    question_terms = content_terms(question)
    if question_terms:
        count = len(found)
        idf = {t: math.log(1 + count / (1 + sum(t in c.terms for c in found))) for t in question_terms}
        total = sum(idf.values())
        for candidate in found:
            candidate.keyword = sum(w for t, w in idf.items() if t in candidate.terms) / total
    query = np.asarray(embedder.encode_query(question), dtype=np.float32)
    vectors = _cache.encode(embedder, [c.quote for c in found])
    for candidate, similarity in zip(found, vectors @ query):
        candidate.dense = float(similarity)
    return found


def choose(found: list[Candidate], config: SelectorConfig) -> Selection:
    """The best sentence when it reaches the threshold, plus up to two more close to it."""
    if not found:
        return Selection(NO_ANSWER, reason="the passages hold no quotable sentence")
    ranked = sorted(found, key=lambda c: c.score(config), reverse=True)
    best = ranked[0].score(config)
    if best < config.min_score:
        return Selection(
            NO_ANSWER, best_score=best,
            reason=f"no sentence is close enough to the question (best score {best:.2f} < {config.min_score:.2f})",
        )  # fmt: skip
    chosen = [ranked[0]]
    words = min(ranked[0].words, config.max_words)
    for candidate in ranked[1:]:
        if len(chosen) >= config.max_sentences or candidate.score(config) < best - config.margin:
            break
        if words + candidate.words > config.max_words or _redundant(candidate, chosen):
            continue
        chosen.append(candidate)
        words += candidate.words
    chosen.sort(key=lambda c: (c.passage, c.sentence.start))
    return Selection(_render(chosen, config.max_words), chosen, best)


def _redundant(candidate: Candidate, chosen: list[Candidate]) -> bool:
    for other in chosen:
        union = candidate.terms | other.terms
        if union and len(candidate.terms & other.terms) / len(union) > 0.8:
            return True
    return False


def _render(chosen: list[Candidate], max_words: int) -> str:
    """'Sentence one [2]. Sentence two [4].': each sentence as the passage has it (whitespace
    collapsed), its passage number before the final punctuation (a full stop is added where it
    has none); an over-long sentence is cut to its first `max_words` words with an ellipsis."""
    parts = []
    for candidate in chosen:
        text = candidate.quote
        tokens = text.split()
        if len(tokens) > max_words:
            text = " ".join(tokens[:max_words]) + " …"
        match = re.search(r"[.!?]+$", text)
        end = match.group() if match else "."  # a heading or list item gets a full stop after its [n]
        parts.append(f"{text[: len(text) - len(match.group()) if match else len(text)].rstrip()} [{candidate.passage + 1}]{end}")
    return " ".join(parts)


def relevance(question: str, claims: list[tuple[str, int]], passages: Sequence[Any], embedder: Any, config: SelectorConfig) -> list[float]:
    """The selector's score for sentences someone else wrote, each attributed to a passage
    (0-based index): how well a generated sentence answers the question, on the same scale as
    `min_score`. Keyword IDF comes from the passages' own sentences."""
    if not claims:
        return []
    pool = [frozenset(content_terms(s.text)) for p in passages for s in split_sentences(p.text)]
    question_terms = content_terms(question)
    idf = {t: math.log(1 + len(pool) / (1 + sum(t in terms for terms in pool))) for t in question_terms}
    total = sum(idf.values())
    query = np.asarray(embedder.encode_query(question), dtype=np.float32)
    vectors = _cache.encode(embedder, [text for text, _ in claims])
    scores = []
    for (text, passage), similarity in zip(claims, vectors @ query):
        terms = content_terms(text)
        keyword = sum(w for t, w in idf.items() if t in terms) / total if total else 0.0
        scores.append(float(similarity) + config.keyword_weight * keyword + config.rank_weight / (1 + passage))
    return scores


def select(question: str, passages: Sequence[Any], embedder: Any, min_score: float, **overrides: Any) -> Selection:
    """The extractive answer to `question` from `passages` (numbered [1].. in this order)."""
    config = SelectorConfig(min_score=min_score, **overrides)
    return choose(candidates(question, passages, embedder), config)
