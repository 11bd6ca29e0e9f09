"""parse_file on real and generated files: encodings, type by content, named failure reasons,
zip bombs refused unopened, special files refused unread."""

from __future__ import annotations

import os
import shutil
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import parse_failure as _reason
from conftest import parsed_text as _text
from ragkb import parse
from ragkb.charsets import detect_encoding
from ragkb.config import Settings
from ragkb.parse import SUPPORTED_SUFFIXES, detect_type, document_type, parse_file, unsupported_reason

FIXTURES = Path(__file__).parent / "fixtures"
ENCODINGS = FIXTURES / "encodings"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00" + bytes(range(256)) * 4


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail instead of hanging when something opens a FIFO for reading."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("blocked on a special file")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --- encodings (real non-UTF-8 files and written paragraphs) ---------------------------------


def test_real_cp1252_html_is_decoded_as_cp1252(settings: Settings) -> None:
    text = _text(ENCODINGS / "fake-html-cp1252.html", settings)
    for words in ("Die schöne Frau", "köstlich", "15,50 €", "L'été était très chaud", "El niño", "¡Qué rico!"):
        assert words in text


def test_real_latin1_markdown_is_decoded_as_latin1(settings: Settings) -> None:
    text = _text(ENCODINGS / "umlauts-non-utf8.md", settings)
    assert "können" in text and "äöüß" in text


def test_cp1252_french_paragraph_keeps_its_accents(settings: Settings) -> None:
    text = _text(ENCODINGS / "creche-cp1252.txt", settings)
    for words in ("crèche", "3,50 € de l’heure", "cœur", "« Nous privilégions", "goûter"):
        assert words in text


def test_latin1_german_paragraph_keeps_its_umlauts(settings: Settings) -> None:
    text = _text(ENCODINGS / "cafe-latin1.txt", settings)
    for words in ("Café crème", "Erdgeschoß", "Brötchen", "Müsli", "Bürofläche", "schließt"):
        assert words in text


def test_cyrillic_cp1251_is_not_forced_into_a_western_code_page(settings: Settings) -> None:
    assert "Сотрудники приходят в офис" in _text(ENCODINGS / "rules-cp1251.txt", settings)


@pytest.mark.parametrize("name", ["fake-text-utf-16.txt", "fake-text-utf-16-be.txt"])
def test_utf16_with_and_without_bom_still_works(settings: Settings, name: str) -> None:
    assert "This is a test document to use for unit tests." in _text(ENCODINGS / name, settings)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_unicode_files_still_work(settings: Settings, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Café crème à la crèche, 3 € — ça va.\n".encode(encoding))
    assert _text(path, settings) == "Café crème à la crèche, 3 € — ça va."


def test_detect_encoding_prefers_western_code_pages() -> None:
    assert detect_encoding("crèche".encode("cp1252")) == "cp1252"
    assert detect_encoding("Café crème".encode("latin-1")) == "cp1252"
    assert detect_encoding("Zażółć gęślą jaźń. Łódź jest dużym miastem.".encode("cp1250")) == "cp1250"
    assert detect_encoding("Ελληνικά κείμενα για δοκιμή κωδικοποίησης.".encode("cp1253")) == "cp1253"


# --- type by content ----------------------------------------------------------------------


LICENSE_TEXT = (
    "Apache License\nVersion 2.0, January 2004\n\n"
    "Licensed under the Apache License, Version 2.0 (the License); you may not use this file except in "
    "compliance with the License. Unless required by applicable law or agreed to in writing, software "
    "distributed under the License is distributed on an AS IS BASIS, WITHOUT WARRANTIES OR CONDITIONS.\n"
)


@pytest.mark.parametrize("name", ["README", "LICENSE", "Apache-2.0", "notes.v2"])
def test_extensionless_text_is_detected_and_parsed(settings: Settings, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(LICENSE_TEXT)
    assert detect_type(path) == document_type(path) == "text"
    assert unsupported_reason(path) == ""
    assert "WITHOUT WARRANTIES OR CONDITIONS" in _text(path, settings)


@pytest.mark.parametrize(
    ("source", "doc_type", "words"),
    [
        (FIXTURES / "docs" / "fake-memo.pdf", "pdf", "20,000 bottles of water"),
        (FIXTURES / "docs" / "handbook-1p.docx", "docx", "The United States Trustee appoints"),
        (FIXTURES / "docs" / "fake-power-point.pptx", "pptx", "Adding a Bullet Slide"),
        (FIXTURES / "docs" / "fake-email.eml", "email", "This is a test email"),
        (FIXTURES / "docs" / "fake-html.html", "html", "My First Heading"),
    ],
)
def test_documents_without_extension_are_detected_by_content(
    settings: Settings, tmp_path: Path, source: Path, doc_type: str, words: str
) -> None:
    path = tmp_path / "copied-without-extension"
    shutil.copy(source, path)
    assert detect_type(path) == doc_type
    assert words in _text(path, settings)


@pytest.mark.parametrize(
    ("source", "doc_type"),
    [
        (FIXTURES / "formats" / "stanley-cups.xlsx", "xlsx"),
        (FIXTURES / "formats" / "simple.doc", "doc"),
        (FIXTURES / "formats" / "fake-email.msg", "msg"),
        (FIXTURES / "formats" / "fake-doc.rtf", "rtf"),
        (FIXTURES / "formats" / "table-multi-row-column-cells.png", "image"),
        (FIXTURES / "formats" / "single_table.pdf", "pdf"),
        (FIXTURES / "more" / "tests-example.xls", "xls"),
        (FIXTURES / "more" / "fake.odt", "odt"),
        (FIXTURES / "more" / "eng_spa_mult.epub", "epub"),
        (FIXTURES / "more" / "factbook.xml", "xml"),
        (FIXTURES / "more" / "arbitrary-records.ndjson", "json"),
        (FIXTURES / "bad" / "password-protected.xlsx", "encrypted"),
    ],
)
def test_office_ole_odf_epub_image_rtf_xml_json_are_detected_by_content(tmp_path: Path, source: Path, doc_type: str) -> None:
    path = tmp_path / "no-extension"
    shutil.copy(source, path)
    assert detect_type(path) == doc_type


def test_legacy_extension_on_a_new_format_is_read_by_content(settings: Settings, tmp_path: Path) -> None:
    """Real files do this: eng_spa_mult.doc / .ppt of the example documents are DOCX / PPTX."""
    path = tmp_path / "handbook.doc"
    shutil.copy(FIXTURES / "docs" / "handbook-1p.docx", path)
    assert detect_type(path) == "docx"
    assert "The United States Trustee appoints" in _text(path, settings)


def test_encrypted_office_file_without_extension_is_reported_as_encrypted(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "salaries"
    shutil.copy(FIXTURES / "bad" / "password-protected.xlsx", path)
    assert _reason(path, settings).startswith("encrypted Office document: password-protected")


def test_renamed_file_keeps_its_type(tmp_path: Path) -> None:
    named, bare = tmp_path / "notes.txt", tmp_path / "notes"
    named.write_text("Meeting notes: the canteen opens at eight.\n")
    shutil.copy(named, bare)
    assert document_type(named) == document_type(bare) == "text"


def test_broken_png_without_extension_is_an_image_that_cannot_be_read(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "scan0001"
    path.write_bytes(PNG)
    assert detect_type(path) == "image" and unsupported_reason(path) == ""
    assert _reason(path, settings).startswith("unreadable image")


def test_known_unsupported_types_and_unknown_binaries_are_named(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "blob.dat").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "archive").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)))
    assert detect_type(tmp_path / "logo.svg") is None
    assert _reason(tmp_path / "logo.svg", settings) == "unsupported file type '.svg' (SVG image)"
    assert _reason(tmp_path / "blob.dat", settings) == "unsupported type: binary file of unknown type"
    assert _reason(tmp_path / "archive", settings) == "unsupported type: gzip archive"
    assert ".txt" in SUPPORTED_SUFFIXES and ".pdf" in SUPPORTED_SUFFIXES and ".xlsx" in SUPPORTED_SUFFIXES


def test_text_starting_like_a_bitmap_is_still_text(tmp_path: Path) -> None:
    path = tmp_path / "fleet"
    path.write_text("BMW and Audi cars in the fleet are serviced every spring.\n")
    assert detect_type(path) == "text"


# --- failure reasons that say what is wrong -------------------------------------------------


def test_pdf_without_pages_says_so(settings: Settings, tmp_path: Path) -> None:
    from pypdf import PdfWriter

    path = tmp_path / "zero-pages.pdf"
    with path.open("wb") as handle:
        PdfWriter().write(handle)
    assert _reason(path, settings) == "PDF has no pages"


def _nested_html(depth: int, inner: str) -> str:
    closing = "<p>Closing paragraph after the nesting.</p>"
    return f"<html><body>{'<div>' * depth}{inner}{'</div>' * depth}{closing}</body></html>"


def test_deeply_nested_html_is_ingested_not_lost(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "generated.html"
    inner = "<h2>Delivery terms</h2><p>Goods ship within five working days.</p><ul><li>Free returns</li></ul>"
    path.write_text(_nested_html(300, inner))
    blocks = parse_file(path, settings)
    assert [(b.kind, b.text, b.section) for b in blocks] == [
        ("title", "Delivery terms", "Delivery terms"),
        ("text", "Goods ship within five working days.", "Delivery terms"),
        ("list", "Free returns", "Delivery terms"),
        ("text", "Closing paragraph after the nesting.", "Delivery terms"),
    ]


def test_deeply_nested_html_without_text_names_the_depth(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "empty-nest.html"
    path.write_text("<html><body>" + "<div>" * 400 + "</div>" * 400 + "</body></html>")
    reason = _reason(path, settings)
    assert "nested 402 levels deep" in reason and "255" in reason


def test_table_text_keeps_one_line_per_row(settings: Settings) -> None:
    tables = [b.text for b in parse_file(FIXTURES / "docs" / "docx-tables.docx", settings) if b.kind == "table"]
    assert tables[0] == "Header Col 1 | Header Col 2\nLorem ipsum | A link example"


# --- zip bombs are refused before any parser inflates them ----------------------------------


def _bomb(path: Path, member_mb: int) -> Path:
    """A DOCX-shaped zip whose document.xml inflates to `member_mb` MB of zeros (written in 1 MB
    pieces: about 2 MB on disk, bounded memory, under a second)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            piece = b"\0" * (1 << 20)
            for _ in range(member_mb):
                member.write(piece)
    return path


@pytest.fixture
def no_unstructured(monkeypatch: pytest.MonkeyPatch) -> None:
    def _refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unstructured was asked to open a zip bomb")

    monkeypatch.setattr(parse, "_partition", _refuse)


def test_docx_zip_bomb_is_refused_unopened(settings: Settings, tmp_path: Path, no_unstructured: None) -> None:
    bomb = _bomb(tmp_path / "invoice.docx", 400)
    assert bomb.stat().st_size < 5 * 1024 * 1024
    reason = _reason(bomb, settings)
    assert reason.startswith("decompresses to 400 MB (limit 256 MB") and reason.endswith("possible zip bomb")


def test_extensionless_zip_bomb_is_refused_too(settings: Settings, tmp_path: Path, no_unstructured: None) -> None:
    bomb = _bomb(tmp_path / "invoice", 400)
    assert detect_type(bomb) == "docx"
    assert "possible zip bomb" in _reason(bomb, settings)


def test_absurd_compression_ratio_is_refused_below_the_size_limit(
    settings: Settings, tmp_path: Path, no_unstructured: None
) -> None:
    bomb = _bomb(tmp_path / "slides.docx", 60)
    reason = _reason(bomb, settings.model_copy(update={"max_unzipped_mb": 4096.0}))
    assert reason.startswith("member word/document.xml decompresses to 60 MB at") and "possible zip bomb" in reason


# --- only regular files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pipe.txt", "pipe"])
def test_fifo_is_refused_without_being_opened(settings: Settings, tmp_path: Path, deadline: None, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    assert detect_type(fifo) is None
    assert unsupported_reason(fifo) == "not a regular file (FIFO)"
    assert _reason(fifo, settings).startswith("not a regular file (FIFO)")


def test_device_is_refused(settings: Settings, deadline: None) -> None:
    assert _reason(Path("/dev/zero"), settings).startswith("not a regular file (character device)")


def _roman(number: int) -> str:
    numerals = [(10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = ""
    for value, letters in numerals:
        while number >= value:
            out, number = out + letters, number - value
    return out


def test_a_book_length_text_is_read_by_layout_without_spacy(
    settings: Settings, tmp_path: Path, no_unstructured: None
) -> None:
    """War and Peace (3.2 MB) hit the parse timeout: unstructured tags every paragraph with
    spaCy. Past `LAYOUT_MIN_CHARS` paragraphs and headings come from the layout alone."""
    page = (FIXTURES / "books" / "book-war-and-peace-1p.txt").read_text().split("\n", 2)[2]
    chapters = [f"CHAPTER {_roman(n)}\n\n{page}" for n in range(1, 81)]
    steps = "Before leaving:\n\n1. Close the windows of the\n   drawing room.\n2. Lock the door."
    book = tmp_path / "war-and-peace.txt"
    book.write_text("\n\n".join([*chapters, steps]))
    assert book.stat().st_size > parse.LAYOUT_MIN_CHARS

    blocks = parse_file(book, settings)
    titles = [b.text for b in blocks if b.kind == "title"]
    assert titles == [f"CHAPTER {_roman(n)}" for n in range(1, 81)]
    scherer = [b for b in blocks if b.text.startswith("It was in July, 1805")]
    assert [b.section for b in scherer[:2]] == ["CHAPTER I", "CHAPTER II"]
    assert "Anna Pavlovna Scherer, maid of honor" in scherer[0].text  # hard-wrapped lines joined
    assert [(b.kind, b.text) for b in blocks[-2:]] == [
        ("list", "Close the windows of the drawing room."), ("list", "Lock the door.")
    ]


def test_a_short_text_is_still_classified_by_unstructured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = parse._partition

    def _spy(path: Path, doc_type: str, text: str | None = None) -> list[object]:
        calls.append(doc_type)
        return original(path, doc_type, text)

    monkeypatch.setattr(parse, "_partition", _spy)
    blocks = parse_file(FIXTURES / "books" / "book-war-and-peace-1p.txt", settings)
    assert calls == ["text"] and blocks[0].kind == "title" and blocks[0].text == "CHAPTER I"
