"""Ingest + ask with every non-loopback connection blocked: the run must succeed and try none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

GUARD = Path(__file__).parent / "egress_guard"


def _guarded(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(GUARD),
        "EGRESS_GUARD_LOG": str(tmp_path / "egress.log"),
        "RAGKB_HOME": str(tmp_path / "home"),
        **env,
    }
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=900)


def test_guard_catches_an_outbound_connection(tmp_path):
    """Without this, a broken guard would make the real test pass vacuously."""
    for probe in [
        "import socket; socket.create_connection(('192.0.2.1', 443), timeout=1)",
        "import socket; socket.socket().connect(('192.0.2.1', 443))",
        "import urllib.request; urllib.request.urlopen('https://huggingface.co', timeout=1)",
    ]:
        result = _guarded(tmp_path, "-c", probe)
        assert result.returncode != 0 and "egress blocked" in result.stderr
    log = (tmp_path / "egress.log").read_text()
    assert "dns '192.0.2.1'" in log and "connect '192.0.2.1'" in log and "huggingface.co" in log


@pytest.mark.slow
def test_ingest_and_ask_open_no_outbound_connection(tmp_path, docs):
    """Default settings: the auto backend probes loopback Ollama, then runs the embedded model."""
    ingest = _guarded(tmp_path, "-m", "ragkb.cli", "ingest", str(docs), "--json")
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["added"] == 6
    ask = _guarded(tmp_path, "-m", "ragkb.cli", "ask", "Who wrote the memo about the bottles of wine?", "--json")
    assert ask.returncode in (0, 1), ask.stderr  # 1 = answer flagged; the tiny model may not cite
    answer = json.loads(ask.stdout)
    assert answer["passages"] and answer["backend"] != "none"
    log = tmp_path / "egress.log"
    assert not log.exists() or log.read_text() == "", log.read_text()
