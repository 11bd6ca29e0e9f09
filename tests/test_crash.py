"""A real `ragkb ingest` process killed with SIGKILL mid-run, then run again."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_consistent
from ragkb.config import Settings
from ragkb.ingest import Ingestor
from ragkb.runtime import Runtime

_WORDS = (
    "policy leave payroll audit contract vendor invoice laptop badge travel expense safety "
    "training holiday pension overtime remote office parking benefit claim approval manager"
).split()


def _write_corpus(folder: Path, files: int) -> None:
    rng = random.Random(7)
    folder.mkdir()
    for i in range(files):
        paragraphs = [f"# Procedure {i}"]
        for p in range(6):
            paragraphs.append(" ".join(rng.choice(_WORDS) for _ in range(60)) + f" (ref {i}-{p}).")
        (folder / f"procedure-{i:02d}.md").write_text("\n\n".join(paragraphs))


def _ingest(home: Path, docs: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RAGKB_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "ragkb.cli", "ingest", str(docs), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _count(manifest: Path, sql: str) -> int:
    if not manifest.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


DOCS = "SELECT COUNT(*) FROM docs"
STORED = "SELECT COUNT(*) FROM sources WHERE status = 'ok'"
FILES = 100  # two embedding batches, so a kill can land between and inside them


@pytest.mark.slow
def test_sigkill_mid_ingest_leaves_no_orphans_or_duplicates(tmp_path):
    docs, home = tmp_path / "docs", tmp_path / "home"
    _write_corpus(docs, files=FILES)
    settings = Settings(home=home)
    victim = _ingest(home, docs)
    deadline = time.monotonic() + 300
    while _count(settings.manifest_path(), DOCS) < 1 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, "the first run finished before it could be killed: " + victim.stderr.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stored_before = _count(settings.manifest_path(), STORED)
    assert stored_before < FILES

    rerun = _ingest(home, docs)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["added"] + report["unchanged"] + report["updated"] == FILES and report["failed"] == []
    assert report["added"] == FILES - stored_before

    with Runtime(settings) as runtime:
        ingestor = Ingestor(runtime)
        assert_consistent(ingestor)
        assert len(ingestor.manifest.sources()) == FILES
        assert ingestor.store.count() == ingestor.manifest.total_chunks()
