"""Long plain-text files read by their layout: paragraphs between blank lines, a short
unpunctuated line on its own is a heading, bulleted or numbered lines are list items.

Why not unstructured's `partition_text` for these: it classifies every paragraph with spaCy
(tok2vec + tagger + parser, run one paragraph at a time) to tell narrative text from titles,
about 30 ms per paragraph on one core. A 3.2 MB book (War and Peace, 12,000 paragraphs) took
400 s alone and hit the parse timeout on a loaded machine, while this reader needs a fraction of
a second. For small files unstructured stays in charge (`parse`); what a long text needs from a
parser is its paragraphs and headings, and those are in its layout.

The heading rule follows unstructured's own title heuristic without the part-of-speech step:
one line, at most `_TITLE_MAX_WORDS` words, no sentence punctuation at its end, mostly letters.
"""

from __future__ import annotations

import re

from ragkb.blocks import Block

LAYOUT_MIN_CHARS = 200_000  # above this a text file is read by layout (see the module docstring)
_TITLE_MAX_WORDS = 12  # unstructured's UNSTRUCTURED_TITLE_MAX_WORD_LENGTH default
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•‣◦▪]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_END_PUNCTUATION = tuple(".,;:!?\"'”’)")


def text_blocks(text: str, section: str | None = None) -> list[Block]:
    """Blocks of a plain text in reading order; each heading becomes the section of what follows
    (`section` is the one the text starts under, e.g. the heading before it in a .doc)."""
    blocks: list[Block] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if not lines:
            continue
        if len(lines) == 1 and is_heading(lines[0]):
            section = " ".join(lines[0].split())[:200]
            blocks.append(Block(section, None, section, "title"))
            continue
        for kind, item in _items(lines):
            blocks.append(Block(item, None, section, kind))
    return blocks


def is_heading(line: str) -> bool:
    """A line that can only be a heading by its layout: short, unpunctuated, mostly letters."""
    words = line.split()
    if not words or len(words) > _TITLE_MAX_WORDS or line.endswith(_END_PUNCTUATION) or _LIST_ITEM.match(line):
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 2 and letters >= 0.5 * len(line.replace(" ", ""))


def _items(lines: list[str]) -> list[tuple[str, str]]:
    """A paragraph's hard-wrapped lines joined; each bulleted/numbered line starts a list item."""
    if not _LIST_ITEM.match(lines[0]):
        return [("text", " ".join(lines))]
    items: list[list[str]] = []
    for line in lines:
        if _LIST_ITEM.match(line) or not items:
            items.append([_LIST_ITEM.sub("", line, count=1)])
        else:
            items[-1].append(line)  # a wrapped continuation of the item above
    return [("list", " ".join(item)) for item in items if any(item)]
