"""Checks every generated answer goes through before anyone sees it, whatever model wrote it.

* A `[n]` is a citation only where it follows text: at the start of a line it is a list marker
  (a small model copies the prompt's "[1] passage" layout), after `]` or before `(`/`:` it is
  Markdown. A number with no passage behind it is removed.
* A sentence the answer already said is removed (a small model repeats itself to the token cap;
  `LoopGuard` stops the stream at the first repeat).
* A citation is kept only if the passage it names supports the sentence: most of the content
  words the sentence adds to the question (SUPPORT_THRESHOLD; at least MIN_TERMS of them), and
  every number in it, occur in *that* passage. A sentence left uncited is cited on the model's
  behalf only when one passage supports it in the same way.
* In `strict` mode (a small base model) a sentence that no passage supports is removed, and an
  answer left with nothing is replaced by "I don't know".

`CheckedAnswer.supported` counts the sentences that carry a supported citation; answer.py flags
an answer that has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ragkb.sentences import content_terms, numbers, split_sentences

# Share of a sentence's content words that must occur in the cited passage.
SUPPORT_THRESHOLD = 0.6
# Fewer content words than this cannot be checked against a passage ("[1]", "Yes [2].").
MIN_TERMS = 2
# Uncited sentences are cited on the model's behalf only with at least this many content words.
MIN_TERMS_ATTRIBUTION = 3
# Two sentences with this share of content words in common say the same thing.
REPEAT_JACCARD = 0.9

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_LIST_MARKER_PREFIX = re.compile(r"^[ \t]*(?:[-*\u2022][ \t]*)?$")


@dataclass
class _Sentence:
    start: int
    end: int
    claim: str = ""  # the text without citations
    citations: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (start, end, numbers)
    keep: list[int] = field(default_factory=list)  # supported citation numbers
    removed: bool = False


@dataclass
class CheckedAnswer:
    answer: str
    cited: list[int]  # passage numbers, in order of first citation
    warnings: list[str]
    supported: int  # sentences with at least one supported citation
    unsupported: list[str]  # sentences (claims) no passage supports
    sentences: int  # sentences with content left in the answer
    kept: list[tuple[str, list[int]]] = field(default_factory=list)  # supported (claim, citations)


def supports(claim: str, passage_text: str, terms: set[str] | None = None, asked: set[str] | frozenset[str] = frozenset()) -> float:
    """How far the passage supports the claim: the share of the claim's content words found in
    it, and the share of the words the claim adds to the question (`asked`), whichever is lower.
    0 when a number of the claim is missing from the passage or the claim adds fewer than
    MIN_TERMS words: "Yes, they will use the data collected [1]." only repeats the question, and
    a passage that matches the question would otherwise seem to support it."""
    claim_terms = content_terms(claim)
    added = claim_terms - asked
    if len(added) < MIN_TERMS:
        return 0.0
    passage_terms = terms if terms is not None else content_terms(passage_text)
    if not numbers(claim) <= numbers(passage_text):
        return 0.0
    return min(len(claim_terms & passage_terms) / len(claim_terms), len(added & passage_terms) / len(added))


def _is_markdown(text: str, match: re.Match[str]) -> bool:
    """`![alt][1]`, `[text][1]`, `[1](url)`, `[1]: url` are Markdown, not citations."""
    before = text[match.start() - 1] if match.start() else ""
    after = text[match.end()] if match.end() < len(text) else ""
    return before == "]" or after in ("(", ":")


def _is_list_marker(text: str, match: re.Match[str]) -> bool:
    line_start = text.rfind("\n", 0, match.start()) + 1
    return bool(_LIST_MARKER_PREFIX.match(text[line_start : match.start()]))


def _same(a: set[str], b: set[str]) -> bool:
    union = a | b
    return bool(union) and len(a & b) / len(union) >= REPEAT_JACCARD


def check_answer(raw: str, passages: list[Any], *, strict: bool = False, question: str = "") -> CheckedAnswer:
    """The answer as it may be shown: list markers, unknown and unsupported citations and
    repeated sentences removed, supported citations kept (see the module docstring). With the
    `question`, support is judged on what a sentence adds to it (see `supports`)."""
    text = raw.strip()
    asked = frozenset(content_terms(question))
    count = len(passages)
    passage_terms = [content_terms(p.text) for p in passages]
    warnings: list[str] = []
    deletions: list[tuple[int, int]] = []
    sentences = [_Sentence(s.start, s.end) for s in split_sentences(text)]

    def owner(position: int) -> _Sentence | None:
        for index, sentence in enumerate(sentences):
            if sentence.start <= position < sentence.end:
                # "Fact. [2] Next fact": a citation that opens a sentence closes the one before.
                opening = not text[sentence.start : position].strip()
                if opening and index > 0 and "\n" not in text[sentences[index - 1].end : position]:
                    return sentences[index - 1]
                return sentence
        return None

    unknown: list[int] = []
    markers: list[tuple[int, int]] = []  # every citation and list marker: not part of any claim
    for match in _CITATION.finditer(text):
        if _is_markdown(text, match):
            continue
        markers.append((match.start(), match.end()))
        if _is_list_marker(text, match):
            trailing = len(text[match.end() :]) - len(text[match.end() :].lstrip(" \t"))
            deletions.append((match.start(), match.end() + trailing))
            continue
        numbers_cited = [int(x) for x in match.group(1).split(",")]
        unknown.extend(n for n in numbers_cited if not 1 <= n <= count and n not in unknown)
        sentence = owner(match.start())
        if sentence is None:
            deletions.append((match.start(), match.end()))
            continue
        sentence.citations.append((match.start(), match.end(), [n for n in numbers_cited if 1 <= n <= count]))
    warnings.extend(f"removed citation [{n}]: no such passage in the context" for n in unknown)

    for sentence in sentences:
        claim = text[sentence.start : sentence.end]
        for start, end in sorted(markers, reverse=True):
            if sentence.start <= start < sentence.end:
                claim = claim[: start - sentence.start] + claim[min(end, sentence.end) - sentence.start :]
        sentence.claim = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(claim.split()))

    # Repeats: the second saying of a sentence goes, with its citations.
    seen: list[set[str]] = []
    repeats = 0
    for sentence in sentences:
        terms = content_terms(sentence.claim)
        if len(terms) >= MIN_TERMS and any(_same(terms, other) for other in seen):
            sentence.removed = True
            repeats += 1
        elif terms:
            seen.append(terms)
    if repeats:
        warnings.append(f"removed {repeats} repeated sentence{'s' if repeats > 1 else ''}")

    unsupported_citations: list[str] = []
    added: list[int] = []
    insertions: list[tuple[int, str]] = []
    unsupported: list[str] = []
    for sentence in sentences:
        if sentence.removed:
            continue
        for _, _, cited_numbers in sentence.citations:
            for n in cited_numbers:
                if n in sentence.keep:
                    continue
                if supports(sentence.claim, passages[n - 1].text, passage_terms[n - 1], asked) >= SUPPORT_THRESHOLD:
                    sentence.keep.append(n)
                else:
                    unsupported_citations.append(f"[{n}] from \"{_short(sentence.claim)}\"")
        if sentence.keep or len(content_terms(sentence.claim)) < MIN_TERMS:
            continue
        best, best_support = 0, 0.0
        if len(content_terms(sentence.claim) - asked) >= MIN_TERMS_ATTRIBUTION:
            for n, passage in enumerate(passages, start=1):
                support = supports(sentence.claim, passage.text, passage_terms[n - 1], asked)
                if support > best_support:
                    best, best_support = n, support
        if best_support >= SUPPORT_THRESHOLD:
            sentence.keep.append(best)
            added.append(best)
            insertions.append((_before_final_punctuation(text, sentence), f" [{best}]"))
        else:
            unsupported.append(sentence.claim)
    if unsupported_citations:
        warnings.append(
            "removed citation"
            + ("s " if len(unsupported_citations) > 1 else " ")
            + "; ".join(unsupported_citations)
            + ": the cited passage does not contain what the sentence says"
        )
    warnings.extend(
        f"citation [{n}] added by ragkb: the sentence's words match that passage" for n in sorted(set(added))
    )

    if strict:
        kept = [s for s in sentences if not s.removed and s.keep]
        dropped = [s for s in sentences if not s.removed and not s.keep and s.claim]
        if dropped:
            warnings.append(
                f"removed {len(dropped)} sentence{'s' if len(dropped) > 1 else ''} no passage supports"
            )
        answer = " ".join(_render(s) for s in kept)
    else:
        for sentence in sentences:
            if sentence.removed:
                space = len(text[: sentence.start]) - len(text[: sentence.start].rstrip(" \t"))
                deletions.append((sentence.start - space, sentence.end))
                deletions.extend((start, end) for start, end, _ in sentence.citations)
                continue
            for start, end, cited_numbers in sentence.citations:
                keep = list(dict.fromkeys(n for n in cited_numbers if n in sentence.keep))
                if keep and text[start:end] == "".join(f"[{n}]" for n in keep):
                    continue  # as written
                if keep:
                    insertions.append((start, "".join(f"[{n}]" for n in keep)))
                    deletions.append((start, end))
                else:  # the citation goes, with the space before it: "wine [9]." -> "wine."
                    space = len(text[:start]) - len(text[:start].rstrip(" \t"))
                    deletions.append((start - space, end))
        answer = _apply(text, deletions, insertions)
        kept = [s for s in sentences if not s.removed and s.keep]

    cited: list[int] = []
    for match in _CITATION.finditer(answer):
        if not _is_markdown(answer, match):
            cited.extend(int(x) for x in match.group(1).split(",") if int(x) not in cited)
    with_content = [s for s in sentences if not s.removed and content_terms(s.claim)]
    return CheckedAnswer(
        answer, cited, warnings, len(kept), unsupported, len(with_content), [(s.claim, list(s.keep)) for s in kept]
    )


def render(kept: list[tuple[str, list[int]]]) -> str:
    """Supported sentences as an answer: each with its citations before its final punctuation."""
    return " ".join(_render(_Sentence(0, 0, claim, keep=list(numbers))) for claim, numbers in kept)


def _short(claim: str, limit: int = 60) -> str:
    return claim if len(claim) <= limit else claim[: limit - 1].rstrip() + "…"


def _before_final_punctuation(text: str, sentence: _Sentence) -> int:
    end = sentence.end
    # Citations owned by this sentence but placed after its punctuation: insert before them.
    body = text[sentence.start : end].rstrip()
    match = re.search(r"[.!?]+[\"'\u201d\u2019)]*$", body)
    return sentence.start + (match.start() if match else len(body))


def _render(sentence: _Sentence) -> str:
    claim = sentence.claim
    match = re.search(r"[.!?]+$", claim)
    end = match.group() if match else "."
    body = claim[: len(claim) - len(match.group())] if match else claim
    return f"{body.rstrip()} {''.join(f'[{n}]' for n in sentence.keep)}{end}"


def _apply(text: str, deletions: list[tuple[int, int]], insertions: list[tuple[int, str]]) -> str:
    """Delete the spans and insert the strings (at original offsets); nothing else changes."""
    marks = [0] * (len(text) + 1)
    for start, end in deletions:
        for i in range(start, end):
            marks[i] = 1
    inserts: dict[int, list[str]] = {}
    for position, value in insertions:
        inserts.setdefault(position, []).append(value)
    out: list[str] = []
    for i, char in enumerate(text):
        out.extend(inserts.get(i, []))
        if not marks[i]:
            out.append(char)
    out.extend(inserts.get(len(text), []))
    return "".join(out).strip()


class LoopGuard:
    """Watches a streamed answer and says when to stop: at the first sentence that repeats an
    earlier one, or when the text ends in the same short piece over and over ("[1]:\\n[1]:\\n")."""

    _TAIL_LOOP = re.compile(r"(.{2,60}?)(?:\s*\1){3,}\s*$", re.DOTALL)

    def __init__(self) -> None:
        self.text = ""
        self.stopped_at: int | None = None

    def feed(self, piece: str) -> bool:
        """Add a piece; True when generation should stop (the repetition is cut off)."""
        self.text += piece
        tail = self.text[-400:]
        loop = self._TAIL_LOOP.search(tail)
        if loop and len(loop.group(1).strip()) >= 2:
            self.stopped_at = len(self.text) - len(tail) + loop.start() + len(loop.group(1))
            return True
        found = split_sentences(self.text)
        complete = found[:-1] if found and not re.search(r"[.!?]\s*$", self.text) else found
        seen: list[set[str]] = []
        for sentence in complete:
            claim = _CITATION.sub("", sentence.text)
            terms = content_terms(claim)
            if len(terms) >= MIN_TERMS and any(_same(terms, other) for other in seen):
                self.stopped_at = sentence.start
                return True
            seen.append(terms)
        return False

    @property
    def kept(self) -> str:
        return self.text if self.stopped_at is None else self.text[: self.stopped_at]
