"""End to end through Ingestor and Retriever: each new kind of file (scanned PDF page, PNG scan,
XLSX, CSV, Outlook .msg, RTF, Word 97 .doc, an extension-less text file) is ingested and found
by a question whose answer is only in it, with the right page or sheet; a password-protected
workbook is reported as encrypted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragkb.retrieve import Retriever

FIXTURES = Path(__file__).parent / "fixtures"
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None or shutil.which("pdftoppm") is None,
    reason="OCR needs the Debian packages tesseract-ocr and poppler-utils (make system-deps)",
)

QUESTIONS = [
    ("How many total chunks does Chipper produce?", "single_table.pdf", 1, None),
    ("How long did the Dexterity participants take to complete?", "table-multi-row-column-cells.png", 1, None),
    ("How many Stanley Cups have the Maple Leafs won since 67?", "stanley-cups.xlsx", 2, "Stanley Cups Since 67"),
    ("What were the costs in 2023?", "table-semicolon-delimiter.csv", None, None),
    ("What are the important points in the test email?", "fake-email.msg", None, "Test Email"),
    ("What is in row 2 of the table example?", "fake-doc.rtf", None, None),
    ("Which town has the postcode PA 18901?", "simple.doc", None, None),
    ("wombat", "file_we_dont_want_imported", None, None),
]


@pytest.fixture(scope="module")
def formats_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("formats") / "docs"
    shutil.copytree(FIXTURES / "formats", folder)
    shutil.copy(FIXTURES / "bad" / "password-protected.xlsx", folder / "salaries.xlsx")
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@needs_tesseract
def test_every_new_type_is_ingested_and_answers_with_its_page(settings, runtimes, formats_kb):
    report = runtimes.ingestor(settings).run([formats_kb])
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"salaries.xlsx"} and failed["salaries.xlsx"].startswith("encrypted Excel workbook")
    assert report.added == len(QUESTIONS) and report.skipped == []
    retriever = Retriever(runtimes.runtime(settings))
    for question, name, page, section in QUESTIONS:
        passages = retriever.retrieve(question, top_k=5).passages
        hits = [p for p in passages if Path(p.source).name == name]
        assert hits, (question, [Path(p.source).name for p in passages])
        assert hits[0].page == page, (question, hits[0].page)
        if section is not None:
            assert hits[0].section == section, (question, hits[0].section)
        if name.endswith(".png"):
            assert hits[0].ocr, "a passage read by OCR must say so in its citation"
        elif name.endswith((".xlsx", ".csv", ".msg", ".rtf", ".doc")):
            assert not hits[0].ocr


@needs_tesseract
def test_low_confidence_ocr_pages_are_named_in_the_ingest_summary(settings, runtimes, formats_kb):
    strict = settings.model_copy(update={"ocr_min_confidence": 99.9})
    report = runtimes.ingestor(strict).run([formats_kb / "table-multi-row-column-cells.png"])
    assert report.added == 1
    assert report.warnings and "low OCR confidence" in report.warnings[0].error
    assert report.warnings[0].path.endswith("table-multi-row-column-cells.png")
