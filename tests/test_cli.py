"""The `ragkb` command's contract: JSON shapes and exit codes (DESIGN.md, User contract)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import make_bad_files
from ragkb.cli import app
from ragkb.errors import EXIT_TEMPFAIL
from ragkb.config import Settings
from ragkb.ingest import ingest_lock

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAGKB_LLM_BACKEND", "none")
    return tmp_path / "home"


def test_ingest_json_summary_and_exit_codes(home, docs, embedder):
    first = runner.invoke(app, ["ingest", str(docs), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert set(summary) >= {"added", "updated", "unchanged", "deleted", "failed", "chunks", "seconds"}
    assert summary["added"] == 6 and summary["failed"] == [] and summary["chunks"] > 0

    again = json.loads(runner.invoke(app, ["ingest", str(docs), "--json"]).stdout)
    assert (again["added"], again["updated"], again["unchanged"], again["chunks"]) == (0, 0, 6, 0)

    make_bad_files(docs / "bad")
    failed = runner.invoke(app, ["ingest", str(docs), "--json"])
    assert failed.exit_code == 1
    reasons = {f["path"].rsplit("/", 1)[-1]: f["error"] for f in json.loads(failed.stdout)["failed"]}
    assert "encrypted" in reasons["encrypted.pdf"] and "empty" in reasons["empty.txt"]


def test_human_summary_says_nothing_changed(home, docs, embedder):
    runner.invoke(app, ["ingest", str(docs)])
    result = runner.invoke(app, ["ingest", str(docs)])
    assert result.exit_code == 0 and "unchanged 6" in result.stdout
    assert "nothing changed: no document was embedded" in result.stdout


def test_locked_home_exits_75(home, docs):
    with ingest_lock(Settings(home=home)):
        result = runner.invoke(app, ["ingest", str(docs), "--json"])
    assert result.exit_code == EXIT_TEMPFAIL == 75
    assert "ingest of" in result.output and "in use by another process" in result.output


def test_configuration_errors_exit_2(home, docs, monkeypatch):
    assert runner.invoke(app, ["ingest"]).exit_code == 2  # no paths and no sources configured
    monkeypatch.setenv("RAGKB_ACL_DEFAULT", "sometimes")
    result = runner.invoke(app, ["ingest", str(docs)])
    assert result.exit_code == 2 and "configuration error" in result.output


def test_status_and_forget(home, docs, embedder):
    runner.invoke(app, ["ingest", str(docs)])
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert status["documents"] == 6 and status["chunks"] == status["chunks_in_manifest"] > 0
    assert status["last_run"]["summary"]["added"] == 6
    assert "off" in status["reranker"]
    assert runner.invoke(app, ["forget", str(docs / "fake-memo.pdf")]).exit_code == 0
    assert json.loads(runner.invoke(app, ["status", "--json"]).stdout)["documents"] == 5
    assert runner.invoke(app, ["forget", str(docs / "fake-memo.pdf")]).exit_code == 1


def test_ask_json_contract_with_passages_only_backend(home, docs, embedder):
    runner.invoke(app, ["ingest", str(docs)])
    result = runner.invoke(app, ["ask", "How many bottles of wine were there?", "--json", "--top-k", "3"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["backend"] == "none" and len(answer["citations"]) == 3
    first = answer["citations"][0]
    assert set(first) >= {"n", "source", "page", "section", "text", "score"}
    assert first["source"].endswith("fake-memo.pdf") and first["page"] == 1 and "20,000 bottles" in first["text"]
    assert set(answer["timings_ms"]) >= {"retrieve", "total"}
