"""Element-aware chunking: titles stay with their body, tables stay whole, pages never mix.

A chunk never crosses a page boundary so every citation can name one exact page; it never
crosses a section boundary so the section shown with a citation is the one the text is in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ragkb.parse import Block

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
# A table far beyond the chunk size is split by words, since no embedding sees it whole anyway.
_TABLE_SIZE_FACTOR = 4


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page: int | None
    section: str | None
    kind: str

    def embedding_text(self) -> str:
        """The section title gives a passage its topic, which a bare paragraph often lacks."""
        if self.section and not self.text.startswith(self.section):
            return f"{self.section}\n{self.text}"
        return self.text


@dataclass
class _Buffer:
    parts: list[str] = field(default_factory=list)
    words: int = 0
    page: int | None = None
    section: str | None = None
    only_titles: bool = True

    def add(self, block: Block, words: int) -> None:
        if not self.parts:
            self.page, self.section = block.page, block.section
        self.parts.append(block.text)
        self.words += words
        self.only_titles = self.only_titles and block.kind == "title"


def chunk_blocks(blocks: list[Block], max_words: int, overlap_words: int) -> list[Chunk]:
    """Greedy packing of whole elements; only an element longer than a chunk is split."""
    chunks: list[Chunk] = []
    buffer = _Buffer()

    def emit(text: str, page: int | None, section: str | None, kind: str) -> None:
        chunks.append(Chunk(len(chunks), text, page, section, kind))

    def flush() -> None:
        nonlocal buffer
        if buffer.parts:
            kind = "title" if buffer.only_titles else "text"
            emit("\n".join(buffer.parts), buffer.page, buffer.section, kind)
        buffer = _Buffer()

    for block in blocks:
        words = len(block.text.split())
        if buffer.parts and (block.page != buffer.page or (block.kind == "title" and not buffer.only_titles)):
            flush()
        if block.kind == "table":
            heading = "\n".join(buffer.parts) if buffer.only_titles and buffer.parts else ""
            if not buffer.only_titles:
                flush()
            buffer = _Buffer()
            for piece in _split_words(block.text, max_words * _TABLE_SIZE_FACTOR, 0):
                emit(f"{heading}\n{piece}" if heading else piece, block.page, block.section, "table")
            continue
        if words > max_words:
            heading = "\n".join(buffer.parts) if buffer.only_titles and buffer.parts else ""
            if not buffer.only_titles:
                flush()
            buffer = _Buffer()
            for piece in _split_sentences(block.text, max_words, overlap_words):
                emit(f"{heading}\n{piece}" if heading else piece, block.page, block.section, block.kind)
                heading = ""
            continue
        if buffer.words + words > max_words and not buffer.only_titles:
            flush()
        buffer.add(block, words)
    flush()
    return chunks


def _split_sentences(text: str, max_words: int, overlap_words: int) -> list[str]:
    """Windows of whole sentences; consecutive windows share about `overlap_words` words."""
    sentences: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentences.extend(_split_words(sentence, max_words, 0))
    pieces: list[str] = []
    window: list[str] = []
    count = 0
    for sentence in sentences:
        size = len(sentence.split())
        if window and count + size > max_words:
            pieces.append(" ".join(window))
            carried: list[str] = []
            carried_words = 0
            for previous in reversed(window):
                previous_size = len(previous.split())
                if carried_words + previous_size > overlap_words:
                    break
                carried.insert(0, previous)
                carried_words += previous_size
            window, count = carried, carried_words
        window.append(sentence)
        count += size
    if window:
        pieces.append(" ".join(window))
    return pieces


def _split_words(text: str, max_words: int, overlap_words: int) -> list[str]:
    words = text.split()
    if len(words) <= max_words:
        return [text]
    step = max(1, max_words - overlap_words)
    return [" ".join(words[start : start + max_words]) for start in range(0, len(words), step)]
