"""The document types added for issue 15, on real files from the example documents
(tests/fixtures/formats, tests/fixtures/more, tests/fixtures/bad): OCR of scans and images,
spreadsheets and delimited text, legacy Office, OpenDocument, RTF, Outlook, EPUB, RST/Org,
XML/JSON, encrypted files; then one end-to-end ingest where each file answers a question
whose answer is only in it, with the right page or sheet."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import parse_failure as _reason
from conftest import parsed_text as _text
from ragkb import ocr
from ragkb.blocks import ParseError
from ragkb.chunk import chunk_blocks
from ragkb.config import Settings
from ragkb.parse import parse_document, parse_file

FIXTURES = Path(__file__).parent / "fixtures"
FORMATS = FIXTURES / "formats"
MORE = FIXTURES / "more"
# The example documents beside the repository (shared/ in CI), for files too large to copy.
EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs" / "unstructured_example-docs" / "example-docs"
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None or shutil.which("pdftoppm") is None,
    reason="OCR needs the Debian packages tesseract-ocr and poppler-utils (make system-deps)",
)


# --- OCR ------------------------------------------------------------------------------------------


@needs_tesseract
def test_scanned_pdf_page_is_read_by_ocr_with_its_page_number(settings: Settings) -> None:
    parsed = parse_document(FORMATS / "single_table.pdf", settings)
    assert parsed.ocr_pages == 1 and parsed.ocr_seconds > 0
    assert all(block.ocr and block.page == 1 for block in parsed.blocks)
    text = " ".join(block.text for block in parsed.blocks)
    assert "Chipper" in text and "20,843" in text
    chunks = chunk_blocks(parsed.blocks, settings.chunk_words, settings.chunk_overlap_words)
    assert chunks and all(chunk.ocr and chunk.page == 1 for chunk in chunks)


@needs_tesseract
def test_png_scan_is_read_by_ocr(settings: Settings) -> None:
    parsed = parse_document(FORMATS / "table-multi-row-column-cells.png", settings)
    text = " ".join(block.text for block in parsed.blocks)
    assert "Dexterity" in text and "1672.1 sec" in text and "Low Vision" in text
    assert all(block.ocr and block.page == 1 for block in parsed.blocks) and parsed.warnings == []


def test_pdf_with_a_text_layer_is_never_ocrd(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("OCR ran on a PDF with a text layer")

    monkeypatch.setattr(ocr, "ocr_pdf_pages", refuse)
    parsed = parse_document(FIXTURES / "docs" / "fake-memo.pdf", settings)
    assert parsed.ocr_pages == 0 and not any(block.ocr for block in parsed.blocks)


@needs_tesseract
def test_multipage_tiff_keeps_page_numbers(settings: Settings, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=48)
    pages = []
    for line in ("The boiler room key hangs in the porter's lodge.", "Fire drills are held on the first Monday."):
        page = Image.new("L", (1700, 400), 255)
        ImageDraw.Draw(page).text((60, 160), line, fill=0, font=font)
        pages.append(page)
    path = tmp_path / "scan.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:], dpi=(200, 200))
    blocks = parse_file(path, settings)
    assert {block.page for block in blocks} == {1, 2}
    assert "porter's lodge" in " ".join(b.text for b in blocks if b.page == 1)
    assert "first Monday" in " ".join(b.text for b in blocks if b.page == 2)


@needs_tesseract
def test_low_confidence_page_is_reported_as_a_warning(settings: Settings) -> None:
    strict = settings.model_copy(update={"ocr_min_confidence": 99.9})
    parsed = parse_document(FORMATS / "single_table.pdf", strict)
    assert parsed.blocks and len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("page 1: low OCR confidence") and "RAGKB_OCR_MIN_CONFIDENCE=99.9" in parsed.warnings[0]


def test_ocr_off_keeps_the_no_text_layer_failure_and_says_how_to_enable_it(settings: Settings) -> None:
    off = settings.model_copy(update={"ocr": "off"})
    reason = _reason(FORMATS / "single_table.pdf", off)
    assert reason.startswith("no text layer: scanned or image-only PDF") and "RAGKB_OCR=auto" in reason
    assert "RAGKB_OCR=auto" in _reason(FORMATS / "table-multi-row-column-cells.png", off)


def test_missing_tesseract_says_which_packages_to_install(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr.shutil, "which", lambda name: None)
    reason = _reason(FORMATS / "single_table.pdf", settings)
    assert reason.startswith("no text layer") and "tesseract-ocr and poppler-utils" in reason


def test_ocr_stops_before_the_time_limit_with_a_reason(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 0.0, 200.0])  # budget created, first page checked, second page checked
    monkeypatch.setattr(ocr.time, "monotonic", lambda: next(clock))
    budget = ocr._Budget(settings.model_copy(update={"parse_timeout_s": 300.0}), 3, None)
    budget.check()
    budget.done = 1
    with pytest.raises(ParseError, match=r"OCR of 3 page\(s\) does not fit in RAGKB_PARSE_TIMEOUT_S=300 s"):
        budget.check()


def test_tesseract_tsv_becomes_paragraphs_with_hyphenation_undone() -> None:
    rows = ["level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"]
    words = [(1, 1, 1, "Claims", 96), (1, 1, 1, "are", 95), (1, 1, 1, "reim-", 90), (1, 1, 2, "bursed", 91),
             (1, 1, 2, "monthly.", 93), (2, 1, 1, "Signed", 40)]  # fmt: skip
    for block, par, line, text, conf in words:
        rows.append(f"5\t1\t{block}\t{par}\t{line}\t1\t0\t0\t10\t10\t{conf}\t{text}")
    paragraphs, confidences = ocr._paragraphs("\n".join(rows))
    assert paragraphs == ["Claims are reimbursed monthly.", "Signed"]
    assert confidences == [96, 95, 90, 91, 93, 40]


# --- spreadsheets and delimited text -------------------------------------------------------------


def test_xlsx_sheets_are_tables_with_the_sheet_as_section_and_page(settings: Settings) -> None:
    blocks = parse_file(FORMATS / "stanley-cups.xlsx", settings)
    tables = [(b.page, b.section, b.text) for b in blocks if b.kind == "table"]
    assert tables[0][:2] == (1, "Stanley Cups") and tables[1][:2] == (2, "Stanley Cups Since 67")
    assert tables[1][2] == "Team | Location | Stanley Cups\nBlues | STL | 1\nFlyers | PHI | 2\nMaple Leafs | TOR | 0"


def test_long_sheet_repeats_its_header_row_in_every_chunk(settings: Settings, tmp_path: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Claims 2024"
    sheet.append(["Claim", "Department", "Amount", "Approved by"])
    for n in range(400):
        sheet.append([f"C-{n:04d}", "Radiology", 100 + n, "J. Smith"])
    workbook.save(tmp_path / "claims.xlsx")
    chunks = chunk_blocks(parse_file(tmp_path / "claims.xlsx", settings), settings.chunk_words, settings.chunk_overlap_words)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text.startswith("Claim | Department | Amount | Approved by\n")
        assert (chunk.section, chunk.page, chunk.kind) == ("Claims 2024", 1, "table")
        assert len(chunk.text.split()) <= settings.chunk_words
    assert "C-0399 | Radiology | 499 | J. Smith" in chunks[-1].text


def test_legacy_xls_keeps_sheet_names(settings: Settings) -> None:
    blocks = parse_file(MORE / "tests-example.xls", settings)
    assert {b.section for b in blocks} == {"Example Test", "Format Abbr.", "Readme"}
    assert any("MC | Multiple Choice" in b.text and b.page == 2 for b in blocks)


@pytest.mark.parametrize(
    ("name", "row"),
    [("table-semicolon-delimiter.csv", "2023 | 2 | 143,1 | -814,38"), ("semicolon-delimited.csv", "sed, do | eiusmod | tempor incididunt")],
)
def test_csv_delimiter_is_sniffed(settings: Settings, name: str, row: str) -> None:
    path = FORMATS / name if (FORMATS / name).exists() else MORE / name
    blocks = parse_file(path, settings)
    assert [b.kind for b in blocks] == ["table"] and row in blocks[0].text.splitlines()


def test_tsv_and_utf16_csv(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "rota.tsv").write_text("Name\tShift\nAda\tNight\nGrace\tEarly\n")
    (tmp_path / "rota.csv").write_bytes("Name,Shift\nZoë,Night\n".encode("utf-16"))
    assert parse_file(tmp_path / "rota.tsv", settings)[0].text == "Name | Shift\nAda | Night\nGrace | Early"
    assert parse_file(tmp_path / "rota.csv", settings)[0].text == "Name | Shift\nZoë | Night"


# --- legacy Office, OpenDocument, RTF, Outlook, EPUB ------------------------------------------------


def test_legacy_doc_paragraphs(settings: Settings) -> None:
    text = _text(FORMATS / "simple.doc", settings)
    assert "This is my first thought. This is my second thought." in text and "DOYLESTOWN, PA 18901" in text


@pytest.mark.skipif(not (EXAMPLES / "fake-power-point.ppt").exists(), reason="example documents not beside the repository")
def test_legacy_ppt_slides(settings: Settings) -> None:
    blocks = parse_file(EXAMPLES / "fake-power-point.ppt", settings)
    assert blocks[0].kind == "title" and blocks[0].text == "Adding a Bullet Slide" and blocks[0].page == 1
    assert "Here is some text in a text box!" in [b.text for b in blocks]


def test_odt_keeps_paragraphs_and_tables(settings: Settings) -> None:
    blocks = parse_file(MORE / "fake.odt", settings)
    assert blocks[0].text == "Lorem ipsum dolor sit amet."
    assert blocks[1].kind == "table" and blocks[1].text.splitlines()[1] == "Color | Blue | Red | Green"


def test_rtf_text_and_table(settings: Settings) -> None:
    blocks = parse_file(FORMATS / "fake-doc.rtf", settings)
    assert blocks[0].text == "My First Heading"
    assert [b.text for b in blocks if b.kind == "table"] == ["Column 1 | Column 2\nRow 1, Cell 1 | Row 1, Cell 2\nRow 2, Cell 1 | Row 2, Cell 2"]


def test_outlook_msg_body_and_subject(settings: Settings) -> None:
    blocks = parse_file(FORMATS / "fake-email.msg", settings)
    assert blocks[0].text == "This is a test email to use for unit tests." and blocks[0].section == "Test Email"


def test_epub_chapters(settings: Settings) -> None:
    assert "Todos los seres humanos nacen libres e iguales" in _text(MORE / "eng_spa_mult.epub", settings)


# --- light markup and data ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["README.rst", "README.org"])
def test_rst_and_org_headings_become_sections(settings: Settings, name: str) -> None:
    blocks = parse_file(MORE / name, settings)
    assert [b.text for b in blocks if b.kind == "title"] == ["Example Docs", "XBRL 10-K"]
    assert any(b.kind == "list" and b.text.startswith("example-10k.html - A 10-K SEC filing") for b in blocks)
    assert blocks[-1].section == "XBRL 10-K"


def test_xml_and_json_records_are_name_value_lines(settings: Settings) -> None:
    xml = parse_file(MORE / "factbook.xml", settings)
    assert xml[1].text == "name: Canada\ncapital: Ottawa\nleader: Justin Trudeau\nsport: Hockey"
    records = parse_file(MORE / "arbitrary-records.ndjson", settings)
    assert records[0].text.splitlines()[:2] == ["sku: GRD-8842", "name: Garden Trowel"]


def test_xml_entities_are_not_expanded(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "evil.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><a>&x;</a><b>safe</b></r>')
    text = _text(path, settings)
    assert "root:" not in text and "b: safe" in text


# --- encrypted and wrong files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (FIXTURES / "bad" / "password-protected.xlsx", "encrypted Excel workbook: password-protected"),
        (FIXTURES / "bad" / "encrypted.msg", "encrypted email"),
    ],
)
def test_password_protected_files_are_reported_as_encrypted(settings: Settings, path: Path, words: str) -> None:
    assert _reason(path, settings).startswith(words)


def test_encrypted_docx_is_reported_as_encrypted(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "contract.docx"  # Office keeps any password-protected OOXML file in the same OLE wrapper
    shutil.copy(FIXTURES / "bad" / "password-protected.xlsx", path)
    assert _reason(path, settings).startswith("encrypted Word document: password-protected")


@pytest.mark.parametrize(
    ("name", "reason"),
    [("budget.xlsx", "not an Excel workbook: not a ZIP package"), ("mail.msg", "not an Outlook message: not an OLE"),
     ("book.epub", "not an EPUB book: not a ZIP package"), ("letter.rtf", "not an RTF document")],
)  # fmt: skip
def test_wrong_content_for_the_extension_is_named(settings: Settings, tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"just some words, not the format the name promises\n" * 20)
    assert _reason(path, settings).startswith(reason)


def test_plain_text_saved_as_doc_is_read_as_text(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "minutes.doc"
    path.write_text("Minutes: the committee approved the new rota for the night shift.\n")
    assert "approved the new rota" in _text(path, settings)


@pytest.mark.skipif(not (EXAMPLES / "pdf" / "negative-coords.pdf").exists(), reason="example documents not beside the repository")
def test_text_layer_that_pdfminer_misses_is_read_by_pypdf_not_ocr(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """unstructured files every element of this page under 'Header' (negative coordinates)."""
    monkeypatch.setattr(ocr, "ocr_pdf_pages", lambda *a, **k: pytest.fail("OCR ran on a PDF with a text layer"))
    parsed = parse_document(EXAMPLES / "pdf" / "negative-coords.pdf", settings)
    assert "Comprehensive Carbon Footprint Letter of Assurance" in parsed.blocks[0].text and parsed.blocks[0].page == 1
