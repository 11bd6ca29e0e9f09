"""Sentences and content words: the units the extractive selector quotes and the answer guards check.

Splitting is rule-based and conservative, for text as parsers hand it over: PDF text with one
element per line, hard-wrapped plain text, numbered and bulleted lists. A sentence is a span of
one passage's text, so quoting it (whitespace collapsed) quotes the passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragkb.sparse import tokenize

# Abbreviations after which a period does not end a sentence (lowercased, without the period).
_ABBREVIATIONS = frozenset(
    """e.g i.e etc vs al fig figs no nos eq eqs ref refs sec dept approx inc ltd co corp mr mrs ms dr prof st
    jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k p pp vol cf""".split()
)
# A line that starts a list item: "1.", "2)", "(a)", "-", "*", "•", "·", "–".
_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]\s|\(?[a-zA-Z0-9]\)\s|[-*\u2022\u00b7\u2013\u25aa\u25cf]\s)")
# Candidate sentence ends: terminal punctuation (and closing quotes/brackets), then space.
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
_WORD = re.compile(r"\S+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Sentence:
    text: str  # whitespace collapsed to single spaces
    start: int  # character offsets in the passage text
    end: int


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of text that no sentence crosses: paragraphs, list items, headings, table rows. A
    line break inside running text (hard-wrapped .txt, a PDF line end) does not end a block: the
    next line starts in lower case, or the line before is about as long as the longest line."""
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text) if m.group().strip()]
    wrap = max((len(text[s:e].strip()) for s, e in lines), default=0)
    blocks: list[tuple[int, int]] = []
    item = False  # the current block is a list item
    last = ""  # the current block's last line
    for start, end in lines:
        line = text[start:end].strip()
        if blocks:
            single_break = text[blocks[-1][1] : start].count("\n") == 1
            wrapped = line[0].islower() or (len(last) >= max(40, 0.6 * wrap) and not item)
            if single_break and not _ITEM.match(line) and not re.search(r"[.!?:;]['\"\u201d)]*$", last) and wrapped:
                blocks[-1] = (blocks[-1][0], end)
                last = line
                continue
        blocks.append((start, end))
        item = bool(_ITEM.match(line))
        last = line
    return blocks


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    before = text[: match.start()].rsplit(None, 1)
    word = before[-1].lower() if before else ""
    word = word.lstrip("(\"'\u201c")
    if match.group().startswith(".") and (word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word)):
        return False  # "e.g. the", "J. Smith"
    if len(before) < 2 and re.fullmatch(r"\(?[0-9a-z]{1,3}", word):
        return False  # the "1." or "a." of a numbered item
    following = text[match.end() :].lstrip()
    if not following:
        return True
    return not following[0].islower()  # "approx. three" and "3.5 mm" go on


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of one passage, in order, with their offsets."""
    sentences: list[Sentence] = []
    for block_start, block_end in _blocks(text):
        block = text[block_start:block_end]
        start = 0
        for match in _END.finditer(block):
            if _ends_sentence(block, match):
                _add(sentences, text, block_start + start, block_start + match.end())
                start = match.end()
        _add(sentences, text, block_start + start, block_end)
    return sentences


def _add(sentences: list[Sentence], text: str, start: int, end: int) -> None:
    span = text[start:end]
    stripped = span.strip()
    if not stripped:
        return
    start += len(span) - len(span.lstrip())
    sentences.append(Sentence(" ".join(stripped.split()), start, start + len(stripped)))


def words(text: str) -> int:
    return len(_WORD.findall(text))


def content_terms(text: str) -> set[str]:
    """Stemmed words that carry meaning (BM25's tokeniser: stop words removed)."""
    return set(tokenize(text))


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def coverage(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that occur in the passage (0 when it has none)."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    return len(terms & content_terms(passage)) / len(terms)


def normalize(text: str) -> str:
    """For "does this passage contain this sentence": case and whitespace do not count."""
    return " ".join(text.lower().split())
