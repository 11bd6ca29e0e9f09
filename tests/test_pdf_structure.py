"""PDF manuals read as their authors structured them: sections from the outline (or from lines
that really are headings), citations with the printed page number, no table-of-contents
chunks, chunks filled up to the budget.

Fixtures (tests/fixtures/pdf/SOURCES.md): the first 22 pages of Debian's "Guide for Debian
Maintainers" (outline, roman-numbered front matter, a 3-page TOC), and the first 6 pages of
the bash(1) manual page as groff prints it (no outline, no labels, a footer on every page).
Each test names what the parser did before on the same pages.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest

from conftest import FIXTURES
from ragkb.chunk import Chunk, chunk_blocks
from ragkb.config import Settings
from ragkb.pageref import page_reference, short_page
from ragkb.parse import parse_file
from ragkb.pdfstructure import looks_like_heading

MANUAL = FIXTURES / "pdf" / "debmake-doc-en-p1-22.pdf"
MAN_PAGE = FIXTURES / "pdf" / "bash-1-p1-6.pdf"
ADMONITIONS = {"Note", "Tip", "Caution", "Warning"}


def _chunks(path: Path, settings: Settings) -> list[Chunk]:
    return chunk_blocks(parse_file(path, settings), settings.chunk_words, settings.chunk_overlap_words)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def manual(module_settings: Settings) -> list[Chunk]:
    return _chunks(MANUAL, module_settings)


@pytest.fixture(scope="module")
def man_page(module_settings: Settings) -> list[Chunk]:
    return _chunks(MAN_PAGE, module_settings)


def _holding(chunks: list[Chunk], text: str) -> Chunk:
    found = [chunk for chunk in chunks if text in " ".join(chunk.text.split())]
    assert len(found) == 1, (text, [(c.page, c.section) for c in found])
    return found[0]


# --- page labels ------------------------------------------------------------------------------


def test_citations_carry_the_printed_page_number(manual: list[Chunk]) -> None:
    """Before: page 12 only; the page is printed "3" (the front matter is numbered i-vii)."""
    people = _holding(manual, "There are several types of people interacting around Debian")
    assert (people.page, people.page_label) == (12, "3")
    preface = _holding(manual, "If you are a somewhat experienced Debian user")
    assert (preface.page, preface.page_label) == (8, "vi")
    assert page_reference(people.page, people.page_label) == "p. 3 (PDF page 12)"
    assert short_page(people.page, people.page_label) == "p.3"


def test_a_pdf_without_labels_cites_its_physical_pages(man_page: list[Chunk]) -> None:
    assert {chunk.page_label for chunk in man_page} == {None}
    assert page_reference(4, None) == page_reference(4, "4") == "page 4"


# --- sections ---------------------------------------------------------------------------------


def test_sections_come_from_the_outline(manual: list[Chunk]) -> None:
    """Before: "2.2 How to contribute" was read as a paragraph, so its text was cited as
    "2.1 People around Debian", and notes and tips were cited as sections "Note" and "Tip"."""
    contribute = _holding(manual, "Please refer to the following to learn how to contribute to Debian")
    assert contribute.section == "2.2 How to contribute" and contribute.text.startswith("2.2 How to contribute\n")
    chapter = _holding(manual, "Here are the prerequisites which you need to understand")
    assert chapter.section == "Prerequisites" and chapter.text.startswith("Chapter 2\nPrerequisites\n")
    debugging = _holding(manual, "Debugging of software tends to consume more time")
    assert debugging.section == "2.4 Technical reminders"
    assert not {chunk.section for chunk in manual} & ADMONITIONS
    numbered = {chunk.section for chunk in manual if chunk.page >= 12 and chunk.section and chunk.section[0].isdigit()}
    assert numbered == {f"2.{n} {title}" for n, title in enumerate([
        "People around Debian", "How to contribute", "Social dynamics of Debian", "Technical reminders",
        "Debian documentation", "Help resources", "Archive situation", "Contribution approaches",
        "Novice contributor and maintainer"], start=1)} | {f"3.{n} {title}" for n, title in enumerate([
        "Email address", "mc", "git", "quilt", "devscripts", "sbuild", "git-buildpackage", "HTTP proxy",
        "Private Debian repository", "Virtual machines", "Local network with virtual machines"], start=1)}  # fmt: skip


def test_code_and_page_footers_are_never_section_names(man_page: list[Chunk]) -> None:
    """No outline: the headings are guessed. Before: the footer "2022 September 19" and the
    shell line `if [ −n "$BASH_ENV" ]; then ...` named sections, as did option names."""
    sections = [chunk.section for chunk in man_page]
    assert list(dict.fromkeys(sections)) == [
        "NAME", "SYNOPSIS", "COPYRIGHT", "DESCRIPTION", "OPTIONS", "ARGUMENTS", "INVOCATION", "DEFINITIONS",
        "RESERVED WORDS", "SHELL GRAMMAR", "Simple Commands", "Pipelines", "Lists", "Compound Commands",
    ]  # fmt: skip
    text = "\n".join(chunk.text for chunk in man_page)
    assert "2022 September 19" not in text and "GNU Bash 5.2" not in text  # the footer of every page
    assert 'if [ −n "$BASH_ENV" ]; then . "$BASH_ENV"; fi' in text  # the command stays, as text


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("# poweroff -i -f", False), ("$ ls -l", False), ("−−login", False), ("dh $@", False), ("iv", False),
        ("12", False), ("4.9.1 4.9.2 4.9.3", False), ("Note", False), ("Debian GNU/Linux is:", False),
        ("BASH_ENV", False), ("3 arguments", False), ("Same as −T. hashall", False), ("metacharacter", False),
        ("3.2.4 Going on vacation gracefully", True), ("3.2 mc", True), ("2 Prerequisites", True),
        ("SHELL GRAMMAR", True), ("Step 1: Get the upstream source", True), ("What is debmake?", True),
    ],
)  # fmt: skip
def test_what_reads_as_a_heading(line: str, heading: bool) -> None:
    assert looks_like_heading(line) is heading


# --- table of contents ------------------------------------------------------------------------


def test_the_table_of_contents_becomes_no_chunk(manual: list[Chunk]) -> None:
    """Before: 52 chunks of pages 4-6, dot leaders and page numbers, under sections such as
    ". 5.1.1 The debhelper package"."""
    assert not [chunk for chunk in manual if chunk.page in (4, 5, 6)]
    assert not [chunk for chunk in manual if ". . . ." in chunk.text]
    assert {chunk.page for chunk in manual} >= {3, 7, 8, 9, 10, 12, 22}  # the pages around it are read


# --- chunk sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["manual", "man_page"])
def test_small_elements_are_packed_into_full_chunks(fixture: str, request: pytest.FixtureRequest) -> None:
    """Every line the layout called a title closed a chunk. Before: median 83 and 52 words,
    15% and 28% of the chunks under 20 words."""
    chunks: list[Chunk] = request.getfixturevalue(fixture)
    sizes = [len(chunk.text.split()) for chunk in chunks]
    assert statistics.median(sizes) >= 95, sizes
    assert sum(size < 20 for size in sizes) <= 0.2 * len(sizes), sizes
    assert max(sizes) <= Settings().chunk_words


def test_an_option_stays_with_its_description(man_page: list[Chunk]) -> None:
    """The option names (−c, −i ...) ended a chunk, their description opened the next."""
    options = _holding(man_page, "If the −c option is present, then commands are read")
    assert options.text.startswith("−c\n−i −l −r −s\n−v −x −D\nIf the −c option is present")


# --- the stored passage and its citation ------------------------------------------------------


def test_ingested_manual_is_cited_by_printed_page_and_section(settings: Settings, runtimes, tmp_path: Path) -> None:
    from ragkb.answer import build_prompt
    from ragkb.ingest import Ingestor
    from ragkb.retrieve import Retriever

    folder = tmp_path / "manuals"
    folder.mkdir()
    shutil.copy(MANUAL, folder / MANUAL.name)
    runtime = runtimes.runtime(settings)
    Ingestor(runtime).run([folder])
    passages = Retriever(runtime).retrieve("How can I contribute to Debian? official FAQ Mentors", top_k=5).passages
    best = next(p for p in passages if "Please refer to the following to learn how to contribute" in p.text)
    assert (best.page, best.page_label, best.section) == (12, "3", "2.2 How to contribute")
    assert '(debmake-doc-en-p1-22.pdf, p. 3 (PDF page 12), section "2.2 How to contribute")' in build_prompt("q", [best])
