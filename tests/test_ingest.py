"""The write path on real files: real unstructured, real MiniLM, real embedded Qdrant."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import assert_consistent, make_bad_files, stored_payloads
from ragkb.config import Settings
from ragkb.errors import IngestLocked
from ragkb.ingest import ingest_lock
from ragkb.ingest import manifest as mf
from ragkb.sparse import document_vector
from ragkb.store import NewPoint, Store, schema
from ragkb.weights import Embedder


def test_first_run_adds_every_document_with_page_section_and_type(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    report = ingestor.run([docs])
    assert (report.added, report.updated, report.deleted, report.failed) == (6, 0, 0, [])
    assert report.exit_code == 0
    assert report.chunks == ingestor.store.count() > 6
    payloads = stored_payloads(ingestor)
    by_file = {Path(schema.paths(p)[0]).name: p for p in payloads}
    assert by_file["fake-memo.pdf"]["page"] == 1 and by_file["fake-memo.pdf"]["file_type"] == ["pdf"]
    slides = [p for p in payloads if schema.paths(p)[0].endswith(".pptx")]
    assert {p["section"] for p in slides} >= {"Adding a Bullet Slide"} and slides[0]["page"] == 1
    assert by_file["fake-html.html"]["page"] is None
    tables = [p for p in payloads if p["kind"] == "table"]
    assert len([p for p in tables if schema.paths(p)[0].endswith("docx-tables.docx")]) >= 3
    assert str(docs) in by_file["fake-email.eml"]["locations"][0]["dirs"]
    assert_consistent(ingestor)


def test_unchanged_rerun_embeds_nothing(settings, runtimes, docs):
    runtimes.ingestor(settings).run([docs])

    dim = runtimes.embedder.dim

    class NoEmbedding(Embedder):
        def __init__(self) -> None:
            self.dim = dim

        def encode_documents(self, texts, batch_size=32):  # type: ignore[override]
            raise AssertionError("an unchanged tree must not be embedded again")

    runtimes.embedder = NoEmbedding()
    report = runtimes.ingestor(settings).run([docs])
    assert (report.added, report.updated, report.deleted, report.chunks, report.unchanged) == (0, 0, 0, 0, 6)


def test_touched_but_identical_file_is_unchanged(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    target = docs / "fake-html.html"
    target.write_bytes(target.read_bytes())  # new mtime, same bytes
    report = ingestor.run([docs])
    assert (report.unchanged, report.updated, report.chunks) == (6, 0, 0)


def test_changed_file_replaces_its_chunks(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    (docs / "notes.md").write_text("# Parking\n\nThe staff car park closes at 22:00 on weekdays.\n")
    ingestor.run([docs])
    (docs / "notes.md").write_text("# Parking\n\nVisitors park in the multi-storey on Elm Street.\n")
    report = ingestor.run([docs])
    assert (report.updated, report.added, report.unchanged) == (1, 0, 6)
    texts = [p["text"] for p in stored_payloads(ingestor) if schema.paths(p) == [str(docs / "notes.md")]]
    assert any("Elm Street" in t for t in texts)
    assert not any("22:00" in p["text"] for p in stored_payloads(ingestor))
    assert_consistent(ingestor)


def test_changed_pipeline_settings_reembed_unchanged_files(settings, runtimes, docs):
    first = runtimes.ingestor(settings).run([docs])
    smaller = settings.model_copy(update={"chunk_words": 40})
    ingestor = runtimes.ingestor(smaller)
    report = ingestor.run([docs])
    assert (report.updated, report.unchanged) == (6, 0) and report.chunks > first.chunks
    assert_consistent(ingestor)
    assert ingestor.run([docs]).unchanged == 6


def test_deleted_file_loses_its_chunks(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    (docs / "fake-memo.pdf").unlink()
    report = ingestor.run([docs])
    assert report.deleted == 1
    assert not any(schema.paths(p)[0].endswith("fake-memo.pdf") for p in stored_payloads(ingestor))
    assert ingestor.manifest.source(str(docs / "fake-memo.pdf")) is None
    assert_consistent(ingestor)


def test_ingesting_another_folder_keeps_the_first(settings, runtimes, docs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text("# Leave\n\nAnnual leave is 25 days.\n")
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    report = ingestor.run([other])
    assert (report.added, report.deleted) == (1, 0)
    assert len({p["doc_id"] for p in stored_payloads(ingestor)}) == 7


def test_same_content_under_two_names_is_embedded_once(settings, runtimes, docs):
    shutil.copy(docs / "handbook-1p.docx", docs / "handbook-copy.docx")
    ingestor = runtimes.ingestor(settings)
    report = ingestor.run([docs])
    single = runtimes.ingestor(Settings(home=settings.home.parent / "single")).run([docs / "handbook-1p.docx"])
    handbook = [p for p in stored_payloads(ingestor) if schema.paths(p)[0].startswith(str(docs / "handbook"))]
    assert report.added == 7
    assert len(handbook) == single.chunks
    assert report.chunks == ingestor.store.count()
    assert all(schema.paths(p) == [str(docs / "handbook-1p.docx"), str(docs / "handbook-copy.docx")] for p in handbook)

    (docs / "handbook-1p.docx").unlink()
    ingestor.run([docs])
    handbook = [p for p in stored_payloads(ingestor) if "handbook" in schema.paths(p)[0]]
    assert len(handbook) == single.chunks and schema.paths(handbook[0]) == [str(docs / "handbook-copy.docx")]
    assert_consistent(ingestor)


def test_bad_files_are_reported_and_skipped_and_the_run_completes(settings, runtimes, docs):
    expected = make_bad_files(docs)
    settings = settings.model_copy(update={"max_file_mb": 1.0})
    ingestor = runtimes.ingestor(settings)
    report = ingestor.run([docs])
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == set(expected)
    for name, words in expected.items():
        assert words in failed[name], (name, failed[name])
    assert report.added == 6 and report.exit_code == 1
    assert not any(Path(schema.paths(p)[0]).name in expected for p in stored_payloads(ingestor))
    # the next run reports the same failures without parsing them again
    again = ingestor.run([docs])
    assert {Path(f.path).name for f in again.failed} == set(expected) and again.chunks == 0
    assert_consistent(ingestor)


def test_fixed_file_is_retried(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    (docs / "later.txt").write_bytes(b"")
    assert ingestor.run([docs]).exit_code == 1
    (docs / "later.txt").write_text("The canteen opens at 08:00 and serves breakfast until 10:30.")
    report = ingestor.run([docs])
    assert report.exit_code == 0 and report.added == 1


def test_unsupported_types_are_counted_as_skipped(settings, runtimes, docs):
    (docs / "archive.zip").write_bytes(b"PK\x03\x04 not parsed")
    (docs / ".hidden.md").write_text("# secret draft")
    report = runtimes.ingestor(settings).run([docs])
    assert [Path(s.path).name for s in report.skipped] == ["archive.zip"] and report.added == 6 and not report.failed
    assert "zip" in report.skipped[0].reason


def test_forget_removes_a_file(settings, runtimes, docs):
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    assert ingestor.forget(docs / "fake-html.html") == 1
    assert not any(schema.paths(p)[0].endswith("fake-html.html") for p in stored_payloads(ingestor))
    assert_consistent(ingestor)


def test_second_run_is_refused_while_the_lock_is_held(settings, runtimes, docs):
    with ingest_lock(settings):
        with pytest.raises(IngestLocked, match="ingest of .* is in use by another process"):
            runtimes.ingestor(settings).run([docs])
    assert runtimes.ingestor(settings).run([docs]).added == 6


def test_partial_and_orphaned_documents_are_cleaned_up(settings, runtimes, docs):
    """The states a SIGKILL can leave behind, produced directly: the next run repairs them."""
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    store: Store = ingestor.store
    victim = ingestor.manifest.source(str(docs / "fake-html.html"))
    assert victim is not None
    with ingestor.manifest.transaction():
        ingestor.manifest.put_doc(victim.doc_id, mf.WRITING, victim.chunks)  # killed mid-upsert
        ingestor.manifest.put_doc("f" * 32, mf.READY, 1)  # killed before its source row was written
    orphan = {**next(store.scroll()).payload, "doc_id": "f" * 32}  # points of a doc never journaled ready
    vector = runtimes.embedder.encode_documents([orphan["text"]])[0].tolist()
    store.upsert([NewPoint("00000000-0000-0000-0000-000000000001", vector, document_vector(orphan["text"]), orphan)])
    report = ingestor.run([docs])
    assert report.added == 0 and report.updated == 1  # the partial doc is rebuilt
    assert_consistent(ingestor)

