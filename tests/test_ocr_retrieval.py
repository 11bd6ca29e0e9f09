"""Retrieval over OCR'd scans (eval/RESULTS.md, section 8): the example documents' image files,
the PDFs without a text layer and the rotated PDF are ingested; each question's answer is on
one known page of one scan, and hit@5 counts a passage from that file with that page among the
first five. Slow (OCR of ~20 pages), and it needs shared/ beside the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragkb.retrieve import Retriever

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs" / "unstructured_example-docs" / "example-docs"
SCANS = [*(f"img/{p.name}" for p in sorted((EXAMPLES / "img").glob("*")))] if EXAMPLES.exists() else []
SCANS += ["pdf/loremipsum-flat.pdf", "pdf/single_table.pdf", "pdf/table-multi-row-column-cells.pdf", "rotated-page-90.pdf"]

# (question, file, page): the answer is on that page of that scan
QUESTIONS = [
    ("How does a demon come to possess a mage and create an abomination?", "DA-1p.png", 1),
    ("Who stood perched atop the spire of the village chantry?", "DA-1p.jpg", 1),
    ("Which positions does the competitive service include?", "double-column-A.jpg", 1),
    ("What is OPM responsible for regarding open competitive examinations?", "double-column-B.jpg", 1),
    ("What does the Langmuir adsorption isotherm of ES show?", "embedded-images-tables.jpg", 1),
    ("Which address should be CC'd to keep track of how many emails were sent?", "english-and-korean.png", 1),
    ("What does a layout model take as input and what does it generate?", "layout-parser-paper-combined.tiff", 2),
    ("What are the keywords of the LayoutParser paper?", "layout-parser-paper-combined.tiff", 1),
    ("How many total chunks does Chipper produce?", "single_table.pdf", 1),
    ("What accuracy did the Dexterity participants reach?", "table-multi-row-column-cells.pdf", 1),
    ("Which text mentions Nunc elementum lacus posuere enim molestie finibus?", "loremipsum-flat.pdf", 1),
    ("What does the second line of the rotated page fixture say?", "rotated-page-90.pdf", 1),
]


def hit_at_5(retriever: Retriever, question: str, name: str, page: int) -> tuple[bool, list[tuple[str, int | None]]]:
    passages = retriever.retrieve(question, top_k=5).passages
    found = [(Path(p.source).name, p.page) for p in passages]
    return (name, page) in found, found


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLES.exists() or shutil.which("tesseract") is None, reason="needs shared/ and Tesseract")
def test_scanned_material_answers_with_file_and_page(settings, runtimes, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for relative in SCANS:
        shutil.copy(EXAMPLES / relative, folder / Path(relative).name)
    report = runtimes.ingestor(settings).run([folder])
    assert report.added >= len(SCANS) - 3  # the photo, the bitmap without text, possibly one more
    retriever = Retriever(runtimes.runtime(settings))
    results = {question: hit_at_5(retriever, question, name, page) for question, name, page in QUESTIONS}
    misses = {q: found for q, (hit, found) in results.items() if not hit}
    print(f"hit@5 = {len(QUESTIONS) - len(misses)}/{len(QUESTIONS)}; misses: {misses}")
    assert len(misses) <= 2, misses
