"""Follow-up questions: turn "and for part-time staff?" into a question retrieval can answer alone.

With a language model that follows instructions (Ollama, an OpenAI-compatible server) the
conversation and the follow-up go to a condense prompt, as PrivateGPT and Onyx do, and its one
line is the standalone question. Without one (extractive, none, the embedded base model), or when
the model fails or answers with something that is not a question, the follow-up is combined with
the previous question's terms:

* "and for X?" / "what about X?" / "how about X?": X takes the place of the phrase of the previous
  question it is most like ("How many vacation days do full-time employees get?" + "and for
  part-time staff?" -> "How many vacation days do part-time staff get?"), judged by the embedding
  model retrieval has loaded;
* any other follow-up that leans on the conversation (a pronoun, "and ...", very few content
  words) gets the previous question's content words appended;
* a question that stands on its own is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ragkb.errors import BadInput, LLMError
from ragkb.sentences import content_terms

# Messages of history used: the last few turns are what a follow-up refers to.
MAX_HISTORY_MESSAGES = 8
MAX_MESSAGE_CHARS = 2000
# A replacement phrase must be at least this like the phrase it replaces (cosine, MiniLM).
SUBSTITUTE_MIN_SIMILARITY = 0.35

CONDENSE_PROMPT = """Rewrite the user's last question so that it can be understood without the conversation.
- Resolve pronouns and references ("it", "that", "and for ...?") using the conversation.
- Keep the user's wording otherwise; do not answer the question; add nothing that was not asked.
- If the question already stands on its own, repeat it unchanged.
- Reply with the rewritten question only, on one line."""

_SUBSTITUTION = re.compile(
    r"^\s*(?:(?:and|but|or|so)\s+)?(?:what|how)\s+about\s+(?P<a>.+?)\s*\??\s*$"
    r"|^\s*(?:and|but|or)\s+(?P<prep>for|in|at|with|about|regarding|on|to|from|by)\s+(?P<b>.+?)\s*\??\s*$"
    r"|^\s*(?:and\s+)?(?:the\s+)?same\s+(?:for|with)\s+(?P<c>.+?)\s*\??\s*$",
    re.IGNORECASE,
)
_LEANS = re.compile(
    r"^\s*(?:and|but|or|also|so|then)\b|\b(?:it|its|they|them|their|theirs|this|that|these|those|he|him|his|she|her|"
    r"there|such|the same|the former|the latter|above|previous)\b",
    re.IGNORECASE,
)
# Words that never make a phrase of a question worth replacing.
_FRAME = frozenset(
    """how many much what which who whom whose when where why is are was were do does did can could should would will
    shall may might must get gets got have has had be been being the a an of to in on for at by with from and or but
    i we you they it my our your their there this that these those please tell me us about""".split()
)


def check_history(history: Iterable[Any] | None) -> list[dict[str, str]]:
    """The last MAX_HISTORY_MESSAGES well-formed messages; anything else is refused (BadInput)."""
    if history is None:
        return []
    messages: list[dict[str, str]] = []
    for index, message in enumerate(history):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise BadInput(f"history[{index}] must be an object with 'role' and 'content' only")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise BadInput(f"history[{index}]: role must be 'user' or 'assistant' and content a string")
        messages.append({"role": role, "content": content[:MAX_MESSAGE_CHARS]})
    return messages[-MAX_HISTORY_MESSAGES:]


def needs_context(question: str) -> bool:
    """Does the question lean on what was said before?"""
    if _SUBSTITUTION.match(question) or _LEANS.search(question):
        return True
    return len(content_terms(question)) < 2


def _phrases(question: str) -> list[tuple[int, int]]:
    """Word spans (start, end word index) of the question that could be replaced: runs of
    words outside the question's frame, and their sub-runs of up to four words."""
    tokens = question.rstrip("?.! ").split()
    runs: list[tuple[int, int]] = []
    start = None
    for i, token in enumerate(tokens + [""]):
        word = re.sub(r"[^\w-]", "", token.lower())
        if word and word not in _FRAME:
            start = i if start is None else start
            continue
        if start is not None:
            runs.append((start, i))
            start = None
    spans = []
    for run_start, run_end in runs:
        for i in range(run_start, run_end):
            for j in range(i + 1, min(run_end, i + 4) + 1):
                spans.append((i, j))
    return spans


def substitute(previous: str, replacement: str, embedder: Any, preposition: str | None = None) -> str | None:
    """`previous` with its phrase most like `replacement` replaced by it, or None if none is.
    "and with advertisers?" replaces a phrase that follows "with" in `previous` when there is one."""
    tokens = previous.rstrip().split()
    spans = _phrases(previous)
    after: set[int] = set()
    if preposition:
        after = {i + 1 for i, token in enumerate(tokens) if token.lower() == preposition.lower()}
        aligned = [span for span in spans if span[0] in after]
        spans = aligned or spans
    minimum = 0.0 if preposition and spans and spans[0][0] in after else SUBSTITUTE_MIN_SIMILARITY
    if not spans or embedder is None:
        return None
    texts = [" ".join(tokens[i:j]) for i, j in spans]
    vectors = np.asarray(embedder.encode_documents([replacement, *texts], batch_size=64), dtype=np.float32)
    similarity = vectors[1:] @ vectors[0]
    # Prefer the longest of the phrases that are about as like the replacement as the best one.
    best = float(similarity.max())
    if best < minimum:
        return None
    # Aligned on a preposition: the whole phrase after it goes ("with third parties").
    slack = 1.0 if minimum == 0.0 else 0.05
    candidates = [k for k, s in enumerate(similarity) if s >= best - slack]
    k = max(candidates, key=lambda c: (spans[c][1] - spans[c][0], similarity[c]))
    i, j = spans[k]
    end = re.search(r"[?.!]+$", tokens[j - 1]) if j == len(tokens) else None
    replaced = tokens[:i] + [replacement + (end.group() if end else "")] + tokens[j:]
    text = " ".join(replaced)
    return text if text.endswith(("?", ".", "!")) else text + "?"


def combine(question: str, previous: str, embedder: Any = None) -> str:
    """The follow-up made standalone without a language model (see the module docstring)."""
    if not needs_context(question):
        return question
    match = _SUBSTITUTION.match(question)
    if match:
        replacement = match.group("a") or match.group("b") or match.group("c")
        replaced = substitute(previous, replacement.strip(), embedder, match.group("prep"))
        if replaced:
            return replaced
    own = content_terms(question)
    extra = [w for w in re.findall(r"[\w-]+", previous) if w.lower() not in _FRAME and not content_terms(w) <= own]
    return f"{question.rstrip()} ({' '.join(dict.fromkeys(extra))})" if extra else question


def previous_questions(history: Sequence[dict[str, str]]) -> list[str]:
    return [m["content"] for m in history if m["role"] == "user" and m["content"].strip()]


def condense_without_llm(question: str, history: Sequence[dict[str, str]], embedder: Any = None) -> str:
    """Each earlier user question is made standalone against the one before it, so a chain of
    follow-ups ("and for part-time staff?" then "and for interns?") keeps its subject."""
    standalone = None
    for asked in previous_questions(history):
        standalone = asked if standalone is None else combine(asked, standalone, embedder)
    return question if standalone is None else combine(question, standalone, embedder)


def condense_prompt(question: str, history: Sequence[dict[str, str]]) -> str:
    lines = []
    for message in history:
        who = "User" if message["role"] == "user" else "Assistant"
        lines.append(f"{who}: {' '.join(message['content'].split())}")
    conversation = "\n".join(lines)
    return f"Conversation:\n{conversation}\n\nLast question: {question}\nStandalone question:"


def _clean(reply: str, question: str, history: Sequence[dict[str, str]]) -> str | None:
    """The model's standalone question, or None when its reply is not one."""
    line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:standalone question|question|rewritten question)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip().strip('"\u201c\u201d').strip()
    if not line or len(line) > 3 * (len(question) + max((len(q) for q in previous_questions(history)), default=0)) + 40:
        return None
    if line.lower().startswith(("i don't know", "sorry", "as an ai")):
        return None
    return line


def condense(
    question: str, history: Sequence[dict[str, str]], generator: Any = None, embedder: Any = None
) -> tuple[str, str, list[str]]:
    """(standalone question, how it was made, warnings). `how`: "as asked", "llm", "terms"."""
    if not previous_questions(history):
        return question, "as asked", []
    warnings: list[str] = []
    if generator is not None:
        try:
            reply = "".join(generator.stream(CONDENSE_PROMPT, condense_prompt(question, history)))
        except LLMError as exc:
            warnings.append(f"the follow-up question could not be rewritten by the model ({exc}); used the earlier question's terms")
        else:
            cleaned = _clean(reply, question, history)
            if cleaned is not None:
                return cleaned, "llm", warnings
            warnings.append("the model did not rewrite the follow-up question; used the earlier question's terms")
    standalone = condense_without_llm(question, history, embedder)
    return standalone, "as asked" if standalone == question else "terms", warnings
