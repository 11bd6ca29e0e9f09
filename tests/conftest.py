"""Shared fixtures: real embedding model (loaded once), real embedded Qdrant, real files."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# A developer's own ragkb.toml or RAGKB_* variables must not leak into the tests.
for _key in [k for k in os.environ if k.startswith("RAGKB_")]:
    del os.environ[_key]
# An empty config file: RAGKB_CONFIG wins over ~/.config/ragkb and /etc/ragkb, and must exist.
_EMPTY_CONFIG = Path(tempfile.mkdtemp(prefix="ragkb-tests-")) / "ragkb.toml"
_EMPTY_CONFIG.write_text("")
os.environ["RAGKB_CONFIG"] = str(_EMPTY_CONFIG)
# Tests start many processes, each with a fresh RAGKB_HOME: the default runtime (OpenVINO) would
# convert the model once per home. They embed with torch; tests/test_weights.py and the
# no-egress run cover the default runtime.
os.environ["RAGKB_EMBED_BACKEND"] = "torch"

from collections import Counter  # noqa: E402

from ragkb.config import Settings  # noqa: E402
from ragkb.ingest import Ingestor  # noqa: E402
from ragkb.ingest import manifest as mf  # noqa: E402
from ragkb.runtime import Runtime  # noqa: E402
from ragkb.store import schema  # noqa: E402
from ragkb.weights import Embedder, load_embedder  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(Settings(home=tmp_path_factory.mktemp("models")))


class KB:
    """Runtimes for tests, at most one open per RAGKB_HOME as in a real process (the embedded
    store can be open once): asking for another closes the previous one of that home."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.open: dict[Path, Runtime] = {}

    def runtime(self, settings: Settings, **kwargs: object) -> Runtime:
        previous = self.open.pop(settings.home, None)
        if previous is not None:
            previous.close()
        runtime = Runtime(settings, embedder=self.embedder, **kwargs)  # type: ignore[arg-type]
        self.open[settings.home] = runtime
        return runtime

    def ingestor(self, settings: Settings) -> Ingestor:
        return Ingestor(self.runtime(settings))

    def close(self) -> None:
        for runtime in self.open.values():
            runtime.close()
        self.open.clear()


@pytest.fixture
def runtimes(embedder: Embedder) -> Iterator[KB]:
    manager = KB(embedder)
    yield manager
    manager.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A writable copy of the good fixture documents."""
    target = tmp_path / "docs"
    shutil.copytree(FIXTURES / "docs", target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def parsed_text(path: Path, settings: Settings) -> str:
    """All the text `parse_file` reads from a file."""
    from ragkb.parse import parse_file

    return "\n".join(block.text for block in parse_file(path, settings))


def parse_failure(path: Path, settings: Settings) -> str:
    """The reason `parse_file` gives for refusing a file (the test fails if it parses)."""
    from ragkb.parse import ParseError, parse_file

    with pytest.raises(ParseError) as caught:
        parse_file(path, settings)
    return str(caught.value)


def make_bad_files(folder: Path) -> dict[str, str]:
    """Broken inputs of every kind the brief names; returns file name -> expected reason words."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "bad" / "encrypted.pdf", folder / "encrypted.pdf")
    shutil.copy(FIXTURES / "bad" / "encrypted.eml", folder / "encrypted.eml")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("   \n\n\t\n")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00" + bytes(range(256)) * 8
    (folder / "photo.txt").write_bytes(png)
    (folder / "not-really.pdf").write_bytes(png)
    with zipfile.ZipFile(folder / "truncated.docx", "w") as archive:
        archive.writestr("word/document.xml", "<w:document><w:body><w:p>" * 50)
    data = (folder / "truncated.docx").read_bytes()
    (folder / "truncated.docx").write_bytes(data[: len(data) // 2])
    _image_only_pdf(folder / "scanned.pdf")
    (folder / "huge.txt").write_text("word " * 300_000)  # 1.5 MB; tests set max_file_mb=1
    return {
        "encrypted.pdf": "encrypted",
        "encrypted.eml": "encrypted email",
        "empty.txt": "empty",
        "blank.md": "empty",
        "photo.txt": "binary",
        "not-really.pdf": "not a PDF",
        "truncated.docx": "corrupt",
        "scanned.pdf": "no text layer",
        "huge.txt": "too large",
    }


def _image_only_pdf(path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 200), "white")
    # A grey box, no letters: OCR finds nothing either, so it still fails as "no text layer".
    ImageDraw.Draw(image).rectangle((40, 60, 560, 140), fill=(90, 90, 90))
    image.save(path, "PDF")


def stored_payloads(ingestor: Ingestor) -> list[dict]:
    return [hit.payload for hit in ingestor.store.scroll()]


def assert_consistent(ingestor: Ingestor) -> None:
    """Every ready doc has exactly its chunks in Qdrant, nothing else is there, no duplicates."""
    payloads = stored_payloads(ingestor)
    keys = Counter((p["doc_id"], p["chunk_index"]) for p in payloads)
    assert all(n == 1 for n in keys.values()), "duplicate chunks"
    per_doc = Counter(p["doc_id"] for p in payloads)
    sources = [row for row in ingestor.manifest.sources() if row.status == mf.OK]
    expected = {row.doc_id: ingestor.manifest.doc_chunks(row.doc_id) for row in sources}
    assert dict(per_doc) == expected
    for payload in payloads:
        on_record = sorted(row.path for row in sources if row.doc_id == payload["doc_id"])
        assert schema.paths(payload) == on_record
