"""chunk_blocks on its own: the word budget is hard, titles stay with their body, pages and
sections never mix, long text overlaps by whole sentences, long tables repeat their header."""

from __future__ import annotations

import random
import re
from pathlib import Path

from ragkb.chunk import Chunk, chunk_blocks, split_table
from ragkb.config import Settings
from ragkb.parse import Block, parse_file


def _words(text: str) -> int:
    return len(text.split())


def _sentences(n: int, start: int = 0) -> str:
    return " ".join(f"Sentence number {i} has exactly seven words." for i in range(start, start + n))


# --- the budget ----------------------------------------------------------------------------


def test_phone_list_of_title_like_lines_is_split_within_the_budget(tmp_path: Path) -> None:
    """300 short lines: unstructured calls each a Title; they once became one 1,800-word chunk."""
    names = [f"Extension {100 + i} Dupont Marie-Claire {i:03d} Building B" for i in range(300)]
    path = tmp_path / "phones.txt"
    path.write_text("\n".join(names) + "\n")
    settings = Settings(home=tmp_path / "home")
    blocks = parse_file(path, settings)
    chunks = chunk_blocks(blocks, settings.chunk_words, settings.chunk_overlap_words)
    sizes = [_words(c.text) for c in chunks]
    assert max(sizes) <= settings.chunk_words, sizes
    assert sum(sizes) >= sum(_words(n) for n in names)  # nothing dropped
    joined = "\n".join(c.text for c in chunks)
    assert all(name in joined for name in names)


def test_heading_prefixed_to_a_full_block_never_exceeds_the_budget() -> None:
    blocks = [
        Block("Annual leave and public holidays policy", 1, "Annual leave and public holidays policy", "title"),
        Block(" ".join(["word"] * 50), 1, "Annual leave and public holidays policy", "text"),
    ]
    chunks = chunk_blocks(blocks, 50, 10)
    assert max(_words(c.text) for c in chunks) <= 50
    assert any(c.kind == "title" or c.text.startswith("Annual leave") for c in chunks)


def test_heading_prefixed_to_a_split_paragraph_never_exceeds_the_budget() -> None:
    title = "Section heading with six words"
    blocks = [Block(title, 1, title, "title"), Block(_sentences(30), 1, title, "text")]
    chunks = chunk_blocks(blocks, 40, 10)
    assert chunks[0].text.startswith(title + "\n")
    assert max(_words(c.text) for c in chunks) <= 40


def test_long_table_is_split_into_row_blocks_that_repeat_the_header() -> None:
    header = "Name | Extension | Office"
    rows = [f"Person {i} | {1000 + i} | Room {i % 40}" for i in range(200)]
    table = Block("\n".join([header, *rows]), 3, "Directory", "table")
    chunks = chunk_blocks([table], 60, 10)
    assert len(chunks) > 1
    for chunk in chunks:
        assert _words(chunk.text) <= 60 and chunk.kind == "table" and chunk.page == 3
        assert chunk.text.splitlines()[0] == header
    body_rows = [row for c in chunks for row in c.text.splitlines()[1:]]
    assert body_rows == rows


def test_table_that_fits_is_kept_whole_with_its_heading() -> None:
    table = "A | B\n1 | 2\n3 | 4"
    chunks = chunk_blocks([Block("Prices", 1, "Prices", "title"), Block(table, 1, "Prices", "table")], 50, 5)
    assert [(c.text, c.kind, c.section) for c in chunks] == [(f"Prices\n{table}", "table", "Prices")]


def test_table_without_visible_rows_is_split_by_words() -> None:
    pieces = split_table(" ".join(f"cell{i}" for i in range(95)), 30)
    assert [_words(p) for p in pieces] == [30, 30, 30, 5]


# --- structure -----------------------------------------------------------------------------


def test_title_is_kept_with_its_body() -> None:
    blocks = [
        Block("Handbook", 1, "Handbook", "title"),
        Block("Refunds", 1, "Refunds", "title"),
        Block("Refunds are paid within 30 days.", 1, "Refunds", "text"),
        Block("Ask the front desk.", 1, "Refunds", "list"),
    ]
    chunks = chunk_blocks(blocks, 100, 10)
    assert [(c.text, c.section, c.kind) for c in chunks] == [
        ("Handbook\nRefunds\nRefunds are paid within 30 days.\nAsk the front desk.", "Refunds", "text")
    ]


def test_pages_are_never_mixed() -> None:
    blocks = [
        Block("Opening hours", 1, "Opening hours", "title"),
        Block("The office opens at eight.", 1, "Opening hours", "text"),
        Block("It closes at six.", 2, "Opening hours", "text"),
        Block("Dangling heading", 2, "Dangling heading", "title"),
        Block("Next page body.", 3, "Dangling heading", "text"),
    ]
    chunks = chunk_blocks(blocks, 100, 10)
    assert [(c.text, c.page) for c in chunks] == [
        ("Opening hours\nThe office opens at eight.", 1),
        ("It closes at six.", 2),
        ("Dangling heading", 2),
        ("Next page body.", 3),
    ]


def test_sections_are_never_mixed() -> None:
    blocks = [
        Block("Parking", 1, "Parking", "title"),
        Block("Park in lot C.", 1, "Parking", "text"),
        Block("Canteen", 1, "Canteen", "title"),
        Block("Lunch is served from noon.", 1, "Canteen", "text"),
        Block("Untitled body of another section.", 1, "Elsewhere", "text"),
    ]
    chunks = chunk_blocks(blocks, 100, 10)
    assert [(c.text, c.section) for c in chunks] == [
        ("Parking\nPark in lot C.", "Parking"),
        ("Canteen\nLunch is served from noon.", "Canteen"),
        ("Untitled body of another section.", "Elsewhere"),
    ]


def test_long_paragraph_overlaps_by_whole_sentences() -> None:
    text = _sentences(20)
    chunks = chunk_blocks([Block(text, 1, "S", "text")], 30, 10)
    sentence = re.compile(r"Sentence number \d+ has exactly seven words\.")
    assert len(chunks) > 2
    for previous, current in zip(chunks, chunks[1:]):
        assert _words(current.text) <= 30
        # every piece is made of whole sentences ...
        assert sentence.sub("", current.text).strip() == ""
        # ... and starts with the last whole sentence(s) of the previous piece, at most 10 words
        first = sentence.findall(current.text)[0]
        assert first in previous.text and previous.text.endswith(first)
    all_numbers = {int(n) for c in chunks for n in re.findall(r"number (\d+)", c.text)}
    assert all_numbers == set(range(20))


def test_overlap_never_pushes_a_piece_over_the_budget() -> None:
    text = "Short one. " + " ".join(["long"] * 27) + " end."
    chunks = chunk_blocks([Block(text, 1, None, "text")], 28, 10)
    assert max(_words(c.text) for c in chunks) <= 28


def test_small_elements_of_a_section_are_packed_up_to_the_budget() -> None:
    """Short elements fill a chunk; only the budget, a page, a section or a heading ends it."""
    items = [Block(f"Item {i} keeps five words.", 4, "Tools", "list") for i in range(30)]
    chunks = chunk_blocks([Block("Tools", 4, "Tools", "title"), *items], 60, 10)
    assert [_words(c.text) for c in chunks] == [56, 60, 35]
    assert all(c.section == "Tools" and c.page == 4 for c in chunks)


def test_a_term_that_would_end_a_chunk_opens_the_next_with_its_definition() -> None:
    """A parameter's name must not end one chunk while "The default is one minute" starts the next."""
    blocks = [
        Block(_sentences(5), 2, "Options", "text"),
        Block("--timeout", 2, "Options", "text"),
        Block("The default is one minute.", 2, "Options", "text"),
        Block("Long form follows:", 2, "Options", "text"),
        Block(_sentences(6), 2, "Options", "text"),
    ]
    chunks = chunk_blocks(blocks, 40, 5)
    assert chunks[0].text == _sentences(5)
    assert chunks[1].text == "--timeout\nThe default is one minute."
    # a lead-in before a paragraph too long to join it opens that paragraph's first piece
    assert chunks[2].text.startswith("Long form follows:\nSentence number 0 ")
    assert max(_words(c.text) for c in chunks) <= 40


def test_the_printed_page_label_goes_with_the_chunk() -> None:
    blocks = [Block("Preface", 8, "Preface", "title", page_label="vi"), Block("Why this guide exists.", 8, "Preface", "text", page_label="vi")]
    assert [(c.page, c.page_label) for c in chunk_blocks(blocks, 100, 10)] == [(8, "vi")]


# --- property: any block sequence -----------------------------------------------------------


def _random_blocks(rng: random.Random, n_blocks: int) -> list[Block]:
    blocks: list[Block] = []
    page, section = 1, None
    for b in range(n_blocks):
        if rng.random() < 0.1:
            page += 1
        kind = rng.choice(["title", "title", "text", "text", "list", "table"])
        size = rng.choice([0, 1, 3, 8, 20, 60, 179, 180, 181, 400, 900])
        words = [f"b{b}w{j}" + ("." if rng.random() < 0.15 else "") for j in range(size)]
        if kind == "table" and words:
            width = rng.choice([1, 3, 6, 50])
            text = "\n".join(" ".join(words[i : i + width]) for i in range(0, len(words), width))
        else:
            text = " ".join(words)
        if kind == "title":
            section = " ".join(text.split())[:200] or section
        elif rng.random() < 0.05:
            section = f"other-{b}"
        blocks.append(Block(text, page, section, kind))
    return blocks


def _owner(token: str) -> int:
    return int(token.split("w")[0][1:])


def test_any_block_sequence_keeps_budget_pages_sections_and_content() -> None:
    for seed in range(150):
        rng = random.Random(seed)
        blocks = _random_blocks(rng, rng.randint(0, 60))
        max_words = rng.choice([1, 2, 5, 17, 64, 180, 500])
        overlap = rng.choice([0, 3, 30, 400])
        chunks: list[Chunk] = chunk_blocks(blocks, max_words, overlap)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        seen: set[str] = set()
        for chunk in chunks:
            tokens = [t.rstrip(".") for t in chunk.text.split()]
            assert 0 < len(tokens) <= max_words, (seed, len(tokens), max_words)
            owners = [blocks[_owner(t)] for t in tokens]
            assert {o.page for o in owners} == {chunk.page}, seed
            body = [o for o in owners if o.kind != "title"]
            if body:
                assert {o.section for o in body} == {chunk.section}, seed
            seen.update(tokens)
        expected = {t.rstrip(".") for b in blocks for t in b.text.split()}
        assert seen == expected, seed
