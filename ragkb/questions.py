"""The one rule for what counts as a question, checked at every entry point (CLI, UI, API,
library): not empty, and bounded (a question is not a document; RAGKB_MAX_QUESTION_CHARS).
A module of its own so the UI can check before calling without importing the retrieval stack."""

from __future__ import annotations

from ragkb.errors import BadInput, TooLarge


def check_question(question: str, max_chars: int) -> str:
    """The question without surrounding white space; BadInput / TooLarge otherwise."""
    text = question.strip()
    if not text:
        raise BadInput("the question is empty")
    if len(text) > max_chars:
        raise TooLarge(f"the question is {len(text)} characters long; the limit is {max_chars} (RAGKB_MAX_QUESTION_CHARS)")
    return text
