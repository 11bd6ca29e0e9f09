"""Element-aware chunking: titles stay with their body, pages and sections never mix, and no
chunk is longer than the word budget.

A chunk never crosses a page boundary so every citation can name one exact page; it never
crosses a section boundary so the section shown with a citation is the one the text is in.
The budget is hard: `len(chunk.text.split()) <= max_words` for every input, because a chunk
longer than the embedder's window is silently truncated and its tail can never be found
(a run of 300 title-like lines once became one 1,800-word chunk).
Small elements of one page and section are packed up to the budget; where the budget ends a
chunk, a lead-in or a term on its own line at its end moves to the next chunk, with the text
it introduces.

Why not unstructured's `chunk_by_title` (0.27: titles with their body, tables isolated,
`multipage_sections=False`, repeated table headers): its budget is characters, or tokens
through tiktoken, which fetches its vocabulary from the internet on first use; no character
limit bounds the words the embedder sees. Its chunks carry no section name (we would rebuild
it from `orig_elements`), `combine_text_under_n_chars` merges small sections, overlap is in
characters (mid-word) where ours is whole sentences, and it repeats only header rows the HTML
marks with <th>, which unstructured's DOCX tables never have. It also needs Elements, while
ingest chunks text that never went through unstructured. An adapter plus fixes would be
longer than this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ragkb.parse import Block

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_LEAD_IN_WORDS = 30
_TERM_WORDS = 8


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page: int | None
    section: str | None
    kind: str
    ocr: bool = False  # text recognised by OCR (a scanned page or an image): citations say so
    page_label: str | None = None  # the number printed on the page, where the PDF has labels

    def embedding_text(self) -> str:
        """The section title gives a passage its topic, which a bare paragraph often lacks."""
        if self.section and not self.text.startswith(self.section):
            return f"{self.section}\n{self.text}"
        return self.text


def _words(text: str) -> int:
    return len(text.split())


def _introduces(block: Block) -> bool:
    """A lead-in ("Options are as follows:") or a term on its own line ("--login",
    "metacharacter"): short, and not a finished sentence."""
    text = block.text.rstrip()
    words = _words(text)
    return text.endswith(":") and words <= _LEAD_IN_WORDS or (words <= _TERM_WORDS and text[-1] not in ".!?;)")


@dataclass
class _State:
    """The pending heading run (titles not yet followed by body) and the body being packed."""

    max_words: int
    chunks: list[Chunk] = field(default_factory=list)
    heading: list[Block] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)
    body_words: int = 0

    @property
    def heading_words(self) -> int:
        return sum(_words(b.text) for b in self.heading)

    def emit(self, text: str, first: Block, kind: str, ocr: bool) -> None:
        """A chunk at the page and in the section of its first block."""
        self.chunks.append(Chunk(len(self.chunks), text, first.page, first.section, kind, ocr, first.page_label))

    def emit_titles(self, titles: list[Block]) -> None:
        """Titles with no body of their own (a page ends, a run of title-like lines is too long)."""
        if titles:
            self.emit("\n".join(b.text for b in titles), titles[0], "title", titles[0].ocr)

    def flush(self) -> None:
        """The body with its heading, or a lone heading run."""
        if self.body:
            text = "\n".join(b.text for b in self.heading + self.body)
            self.emit(text, self.body[0], "text", any(b.ocr for b in self.body))
        else:
            self.emit_titles(self.heading)
        self.heading, self.body, self.body_words = [], [], 0

    def add(self, block: Block) -> None:
        self.body.append(block)
        self.body_words += _words(block.text)

    def detach_lead_in(self, room: int) -> list[Block]:
        """Short lines closing the body that introduce what comes next (a term being defined,
        "as follows:"), taken off so that they open the next chunk with what they introduce:
        a parameter's name must not end one chunk while "The default is one minute" starts the
        next. The body keeps its first block; the lines taken fit in `room` words."""
        moved: list[Block] = []
        while len(self.body) > 1 and _introduces(self.body[-1]) and _words(self.body[-1].text) <= room:
            block = self.body.pop()
            moved.insert(0, block)
            self.body_words -= _words(block.text)
            room -= _words(block.text)
        return moved

    def take_heading(self, room: int, section: str | None) -> str:
        """The heading run trimmed so that `room` more words still fit, removed from the state.

        Titles only introduce body of their own section (the last title's); the oldest titles
        go out as a chunk of their own when the run would leave too little room.
        """
        if self.heading and self.heading[-1].section != section:
            self.emit_titles(self.heading)
            self.heading = []
        dropped: list[Block] = []
        while self.heading and self.heading_words + room > self.max_words:
            dropped.append(self.heading.pop(0))
        self.emit_titles(dropped)
        text = "\n".join(b.text for b in self.heading)
        self.heading = []
        return text


def chunk_blocks(blocks: list[Block], max_words: int, overlap_words: int) -> list[Chunk]:
    """Greedy packing of whole elements; only an element longer than the budget is split."""
    max_words = max(1, max_words)
    state = _State(max_words)
    for block in blocks:
        words = _words(block.text)
        if not words:
            continue
        pending = state.body or state.heading
        if pending and block.page != pending[0].page:
            state.flush()
        if state.body and (block.kind == "title" or block.section != state.body[0].section):
            state.flush()
        if block.kind == "title" and words <= max_words // 2:
            if state.heading_words + words > max_words:
                state.flush()
            state.heading.append(block)
        elif block.kind != "table" and words <= max_words:
            carried: list[Block] = []
            if state.body and state.heading_words + state.body_words + words > max_words:
                carried = state.detach_lead_in(max_words - words)
                state.flush()
            if not state.body:
                heading = state.take_heading(words, block.section)
                if heading:
                    state.heading = [replace(block, text=heading, kind="title")]
            for piece in [*carried, block]:
                state.add(piece)
        else:
            if state.body:  # a table or a long paragraph: a lead-in before it opens its first piece
                carried = state.detach_lead_in(max_words // 2)
                state.flush()
                state.heading = carried
            _emit_split(state, block, overlap_words)
    state.flush()
    return state.chunks


def _emit_split(state: _State, block: Block, overlap_words: int) -> None:
    """A table, or an element too long for one chunk, in pieces within the budget."""
    max_words = state.max_words
    words = _words(block.text)
    # A table that fits stays whole with as much heading as fits; otherwise the heading gets
    # at most half the budget so the pieces keep room for content.
    room = words if block.kind == "table" and words <= max_words else max_words - max_words // 2
    heading = state.take_heading(room, block.section)
    budget = max_words - _words(heading)
    if block.kind == "table":
        pieces = split_table(block.text, budget)
    else:
        pieces = _split_sentences(block.text, budget, overlap_words)
    for piece in pieces:
        state.emit(f"{heading}\n{piece}" if heading else piece, block, block.kind, block.ocr)
        heading = ""


def split_table(text: str, max_words: int) -> list[str]:
    """Row blocks within the budget, each starting with the header row when rows are visible.

    A table is kept whole when it fits. Rows are the table text's lines; a table flattened to
    one line has no recognisable rows and is split by words. A header row longer than half
    the budget is not repeated (it would leave too little room for rows).
    """
    if _words(text) <= max_words:
        return [text]
    rows = [row for row in text.splitlines() if row.strip()]
    if len(rows) < 2:
        return _split_words(text, max_words)
    header_words = _words(rows[0])
    start = [rows[0]] if header_words <= max_words // 2 else []
    start_words = header_words if start else 0
    pieces: list[str] = []
    block, count = list(start), start_words
    for row in rows[len(start) :]:
        for part in _split_words(row, max_words - start_words):
            size = _words(part)
            if len(block) > len(start) and count + size > max_words:
                pieces.append("\n".join(block))
                block, count = list(start), start_words
            block.append(part)
            count += size
    pieces.append("\n".join(block))
    return pieces


def _split_sentences(text: str, max_words: int, overlap_words: int) -> list[str]:
    """Windows of whole sentences; consecutive windows share up to `overlap_words` words."""
    sentences: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentences.extend(_split_words(sentence, max_words))
    pieces: list[str] = []
    window: list[str] = []
    count = 0
    for sentence in sentences:
        size = _words(sentence)
        if not size:
            continue
        if window and count + size > max_words:
            pieces.append(" ".join(window))
            carried: list[str] = []
            carried_words = 0
            for previous in reversed(window):
                previous_size = _words(previous)
                if carried_words + previous_size > overlap_words or carried_words + previous_size + size > max_words:
                    break
                carried.insert(0, previous)
                carried_words += previous_size
            window, count = carried, carried_words
        window.append(sentence)
        count += size
    if window:
        pieces.append(" ".join(window))
    return pieces


def _split_words(text: str, max_words: int) -> list[str]:
    words = text.split()
    if len(words) <= max_words:
        return [text]
    return [" ".join(words[start : start + max_words]) for start in range(0, len(words), max_words)]
