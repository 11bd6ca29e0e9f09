"""The manifest (the ingest journal) and the BM25 sparse vectors, tested directly rather than
only through ingest."""

from __future__ import annotations

import math
import threading

from ragkb import sparse
from ragkb.ingest import manifest as mf
from ragkb.ingest.plan import doc_id_for


def _source(manifest: mf.Manifest, path: str, doc_id: str | None, status: str = mf.OK) -> None:
    manifest.put_source(path, doc_id=doc_id, size=1, mtime_ns=1, sha256="s", acl=None, status=status, chunks=2)


def test_stale_docs_are_writing_or_unreferenced(tmp_path):
    manifest = mf.Manifest(tmp_path / "m.sqlite")
    with manifest.transaction():
        manifest.put_doc("ready-and-used", mf.READY, 2, "text")
        manifest.put_doc("half-written", mf.WRITING, 2, "text")
        manifest.put_doc("orphan", mf.READY, 2, "text")
        manifest.put_doc("only-failed", mf.READY, 2, "text")
        _source(manifest, "/a", "ready-and-used")
        _source(manifest, "/b", "half-written")
        _source(manifest, "/c", "only-failed", status=mf.FAILED)
    assert sorted(manifest.stale_docs()) == ["half-written", "only-failed", "orphan"]
    assert manifest.doc_type("ready-and-used") == "text" and manifest.total_chunks() == 6


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    manifest = mf.Manifest(tmp_path / "m.sqlite")
    try:
        with manifest.transaction():
            manifest.put_doc("d", mf.WRITING, 1)
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert manifest.doc_state("d") is None


def test_the_journal_survives_reopening_and_records_runs(tmp_path):
    path = tmp_path / "m.sqlite"
    manifest = mf.Manifest(path)
    run = manifest.start_run()
    with manifest.transaction():
        manifest.put_doc("d", mf.READY, 3, "pdf")
        _source(manifest, "/x.pdf", "d")
        manifest.mark_payload_dirty("d", True)
    manifest.finish_run(run, {"added": 1})
    manifest.close()
    again = mf.Manifest(path)
    assert again.source("/x.pdf").doc_id == "d" and again.dirty_docs() == ["d"]  # type: ignore[union-attr]
    assert again.last_run()["summary"] == {"added": 1}  # type: ignore[index]


def test_threads_share_one_manifest(tmp_path):
    """The UI and the service share one manifest across threads: transactions must not interleave."""
    manifest = mf.Manifest(tmp_path / "m.sqlite")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                with manifest.transaction():
                    manifest.put_doc(f"{n}-{i}", mf.WRITING, 1)
                    manifest.put_doc(f"{n}-{i}", mf.READY, 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and manifest.total_chunks() == 200


def test_doc_id_depends_on_bytes_type_and_pipeline_only():
    assert doc_id_for("abc", "text", "2|m|180|30") == doc_id_for("abc", "text", "2|m|180|30")
    assert doc_id_for("abc", "text", "2|m|180|30") != doc_id_for("abc", "md", "2|m|180|30")
    assert doc_id_for("abc", "text", "2|m|180|30") != doc_id_for("abc", "text", "2|m|120|30")


# --- BM25 sparse vectors -------------------------------------------------------------------------
def test_tokens_are_lowercased_stemmed_and_stopwords_dropped():
    assert sparse.tokenize("The Payments were REFUNDED to the customers") == ["payment", "refund", "custom"]


def test_document_weights_follow_bm25_saturation_and_length_normalisation():
    indices, values = sparse.document_vector("leave leave leave policy")
    weights = dict(zip(indices, values))
    leave, policy = sparse.query_vector("leave")[0][0], sparse.query_vector("policy")[0][0]
    norm = sparse.K1 * (1 - sparse.B + sparse.B * 4 / sparse.AVG_DOC_TOKENS)
    assert math.isclose(weights[leave], 3 * (sparse.K1 + 1) / (3 + norm))
    assert math.isclose(weights[policy], 1 * (sparse.K1 + 1) / (1 + norm))
    assert weights[leave] < 3 * weights[policy]  # term frequency saturates
    short = dict(zip(*sparse.document_vector("leave")))[leave]
    long = dict(zip(*sparse.document_vector("leave " + "filler " * 300)))[leave]
    assert short > long  # the same term counts less in a longer chunk


def test_query_vector_counts_terms_and_ignores_stopwords():
    indices, values = sparse.query_vector("leave the leave of absence")
    assert len(indices) == 2 and sorted(values) == [1.0, 2.0]
    assert sparse.query_vector("the of and") == ([], [])
    assert sparse.document_vector("") == ([], [])
