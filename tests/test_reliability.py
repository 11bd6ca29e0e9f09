"""Fail closed, never hang, one bad thing never stops the whole base (issue 10).

Each test reproduces a defect found by probing d7df614 as a hostile user or a careless operator
would, with real files, real processes and the real store.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, assert_consistent, stored_payloads
from ragkb import audit
from ragkb.config import Settings, SourceFolder
from ragkb.retrieve import Filters, Retriever
from ragkb.runtime import Runtime
from ragkb.store import schema


def _cli(home: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 600, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAGKB_HOME": str(home), "RAGKB_LLM_BACKEND": "none", **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "ragkb.cli", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


# --- 3. access control that fails open ---------------------------------------------------------
def test_configured_but_missing_users_file_is_an_error_not_single_user_mode(tmp_path, docs):
    result = _cli(tmp_path / "home", "ask", "Who wrote the memo?", env={"RAGKB_USERS_FILE": str(tmp_path / "userz.toml")})
    assert result.returncode == 2
    assert "userz.toml" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_configured_but_missing_config_file_is_an_error(tmp_path, docs):
    result = _cli(tmp_path / "home", "ingest", str(docs), "--json", env={"RAGKB_CONFIG": str(tmp_path / "ragkb.tmol")})
    assert result.returncode == 2 and "ragkb.tmol does not exist" in result.stderr
    assert not (tmp_path / "home" / "qdrant").exists()  # nothing changed


def test_config_location_does_not_depend_on_the_working_directory(tmp_path, docs):
    """A ragkb.toml in the current folder used to decide the ACLs of an ingest; now the file is
    found the same way from any folder (RAGKB_CONFIG, then the user's and the system's)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ragkb.toml").write_text('collection = "from-cwd"\n')
    user_config = tmp_path / "xdg" / "ragkb"
    user_config.mkdir(parents=True)
    (user_config / "ragkb.toml").write_text('collection = "from-user-config"\n')
    env = {k: v for k, v in os.environ.items() if k != "RAGKB_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    for cwd in (elsewhere, REPO):
        result = subprocess.run(
            [sys.executable, "-m", "ragkb.cli", "status", "--json"],
            cwd=cwd, env={**env, "RAGKB_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        assert status["collection"] == "from-user-config"
        assert status["config_file"] == str(user_config / "ragkb.toml")
    assert "./ragkb.toml is not read" in result.stderr or cwd == REPO


@pytest.mark.parametrize("broken", ["dangling link", "folder"])
def test_unreadable_acl_sidecar_fails_the_file_closed(settings, runtimes, docs, broken):
    memo = docs / "fake-memo.pdf"
    sidecar = docs / "fake-memo.pdf.acl"
    sidecar.write_text("hr\n")
    ingestor = runtimes.ingestor(settings)
    ingestor.run([docs])
    assert any(schema.paths(p) == [str(memo)] and p["acl"] == ["hr"] for p in stored_payloads(ingestor))
    sidecar.unlink()
    if broken == "folder":
        sidecar.mkdir()
    else:
        sidecar.symlink_to(docs / "no-such-acl")
    report = ingestor.run([docs])
    failure = next(f for f in report.failed if f.path == str(memo))
    assert "ACL sidecar" in failure.error and report.exit_code == 1
    assert not any(str(memo) in schema.paths(p) for p in stored_payloads(ingestor))  # not public, not anything
    assert_consistent(ingestor)


# --- 4. filters that reveal ---------------------------------------------------------------------
def test_folder_filter_reveals_nothing_about_folders_the_reader_cannot_read(tmp_path, runtimes):
    corpus = tmp_path / "kb"
    (corpus / "eng").mkdir(parents=True)
    (corpus / "public").mkdir()
    text = "# Deploy runbook\n\nDeploys happen on Tuesdays after the change board approves them.\n"
    (corpus / "eng" / "runbook.md").write_text(text)
    (corpus / "public" / "runbook.md").write_text(text)  # the same content, also public
    settings = Settings(home=tmp_path / "home", sources=[SourceFolder(path=corpus / "eng", groups=["eng"])])
    runtime = runtimes.runtime(settings)
    from ragkb.ingest import Ingestor

    Ingestor(runtime).run([corpus])
    retriever = Retriever(runtime)
    question = "When do deploys happen?"
    # hr may read the public copy ...
    public = retriever.retrieve(question, groups=["hr"]).passages
    assert public and public[0].source == str(corpus / "public" / "runbook.md")
    # ... but filtering by the eng folder must not confirm that the content also lives there
    assert retriever.retrieve(question, groups=["hr"], filters=Filters(folder=str(corpus / "eng"))).passages == []
    eng = retriever.retrieve(question, groups=["eng"], filters=Filters(folder=str(corpus / "eng"))).passages
    assert eng and eng[0].source == str(corpus / "eng" / "runbook.md")


# --- 5, 6. one bad entry never stops the scan ----------------------------------------------------
def test_broken_links_loops_and_pipes_are_named_and_the_run_completes(settings, runtimes, docs):
    (docs / "gone.txt").symlink_to(docs / "no-such-file.txt")
    (docs / "loop-a.md").symlink_to(docs / "loop-b.md")
    (docs / "loop-b.md").symlink_to(docs / "loop-a.md")
    os.mkfifo(docs / "pipe.txt")
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(report=runtimes.ingestor(settings).run([docs])), daemon=True)
    worker.start()
    worker.join(300)
    assert not worker.is_alive(), "ingest hung on a named pipe"
    report = outcome["report"]
    failed = {Path(f.path).name: f.error for f in report.failed}  # type: ignore[attr-defined]
    skipped = {Path(s.path).name: s.reason for s in report.skipped}  # type: ignore[attr-defined]
    assert "broken symbolic link" in failed["gone.txt"]
    assert "symbolic link loop" in failed["loop-a.md"] and "symbolic link loop" in failed["loop-b.md"]
    assert skipped["pipe.txt"] == "not a regular file (named pipe)"
    assert report.added == 6  # type: ignore[attr-defined]


def test_cli_json_lists_every_skipped_file_with_its_reason(tmp_path, docs):
    (docs / "archive.zip").write_bytes(b"PK\x03\x04 not parsed")
    (docs / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    result = _cli(tmp_path / "home", "ingest", str(docs), "--json")
    assert result.returncode == 0, result.stderr
    skipped = {Path(s["path"]).name: s["reason"] for s in json.loads(result.stdout)["skipped"]}
    assert set(skipped) == {"archive.zip", "logo.svg"} and all(skipped.values())
    status = json.loads(_cli(tmp_path / "home", "status", "--json").stdout)
    assert {Path(s["path"]).name for s in status["skipped"]} == {"archive.zip", "logo.svg"}


# --- 7. a file that would exhaust memory costs that file only -----------------------------------
def _docx_bomb(path: Path, megabytes: int) -> None:
    """A valid-looking DOCX whose document.xml inflates to `megabytes` MB of paragraphs, at
    about 50:1: below the pre-check's ratio limit, so only the parser's memory limit stops it."""
    rng = random.Random(3)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        )
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
            for _ in range(megabytes * 1600):
                member.write(b"<w:p><w:r><w:t>" + b"A" * 600 + b"%016x" % rng.getrandbits(64) + b"</w:t></w:r></w:p>")
            member.write(b"</w:body></w:document>")


def test_a_file_that_exhausts_the_parser_fails_alone_and_does_not_poison_later_runs(settings, runtimes, docs, tmp_path):
    bomb = docs / "bomb.docx"
    _docx_bomb(bomb, 400)
    assert bomb.stat().st_size < 10_000_000
    # the total-size pre-check is lifted so the child process's memory limit is what stops it
    settings = settings.model_copy(update={"max_unzipped_mb": 100_000, "parse_memory_mb": 2500})
    ingestor = runtimes.ingestor(settings)
    report = ingestor.run([docs])
    failure = next(f for f in report.failed if f.path == str(bomb))
    assert "memory" in failure.error or "RAGKB_PARSE_MEMORY_MB" in failure.error
    assert report.added == 6
    again = ingestor.run([docs])  # the verdict is kept: the bomb is not parsed again
    assert [f.path for f in again.failed] == [str(bomb)] and again.unchanged == 6
    assert_consistent(ingestor)


def test_a_parser_that_overruns_its_time_fails_that_file(settings, runtimes, docs):
    slow = settings.model_copy(update={"parse_timeout_s": 0.01})
    report = runtimes.ingestor(slow).run([docs / "fake-html.html"])
    assert report.failed and "RAGKB_PARSE_TIMEOUT_S" in report.failed[0].error
    report = runtimes.ingestor(settings).run([docs / "fake-html.html"])
    assert report.failed and "RAGKB_PARSE_TIMEOUT_S" in report.failed[0].error  # same bytes: cached verdict


# --- 8. long questions and the audit chain -------------------------------------------------------
def test_audit_chain_survives_records_longer_than_any_read_block(tmp_path):
    settings = Settings(home=tmp_path / "home")
    audit.audit(settings, user="a", question="x" * 200_000, doc_ids=[], sources=[], backend="none", channel="cli")
    audit.audit(settings, user="b", question="short", doc_ids=[], sources=[], backend="none", channel="cli")
    check = audit.verify_audit(settings)
    assert check.ok and check.records == 2


def test_an_overlong_question_is_refused_with_exit_2(tmp_path, docs):
    _cli(tmp_path / "home", "ingest", str(docs), "--json")
    result = _cli(tmp_path / "home", "ask", "why " * 2000)
    assert result.returncode == 2 and "RAGKB_MAX_QUESTION_CHARS" in result.stderr and "Traceback" not in result.stderr
    assert _cli(tmp_path / "home", "ask", "Who wrote the memo?").returncode in (0, 1)  # the next question still works


# --- 9. missing or unreadable sources keep their documents ---------------------------------------
def test_a_missing_root_fails_and_keeps_its_documents(tmp_path, docs):
    home = tmp_path / "home"
    assert _cli(home, "ingest", str(docs), "--json").returncode == 0
    moved = tmp_path / "unmounted"
    docs.rename(moved)
    result = _cli(home, "ingest", str(docs), "--json")
    summary = json.loads(result.stdout)
    assert result.returncode == 1 and summary["deleted"] == 0
    assert "missing or unmounted" in summary["failed"][0]["error"]
    assert json.loads(_cli(home, "status", "--json").stdout)["documents"] == 6


def _without_dac_override() -> tuple[str, ...]:
    """Root reads any folder; drop the capability so a 000 folder is unreadable as for a user."""
    if os.geteuid() != 0:
        return ()
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def test_an_unreadable_subfolder_is_reported_and_its_documents_kept(tmp_path, docs):
    home = tmp_path / "home"
    (docs / "private").mkdir()
    (docs / "private" / "salaries.md").write_text("# Salaries\n\nThe salary bands are reviewed every April.\n")
    assert json.loads(_cli(home, "ingest", str(docs), "--json").stdout)["added"] == 7
    os.chmod(home, 0o777)
    (docs / "private").chmod(0o000)
    try:
        result = _cli(home, "ingest", str(docs), "--json", prefix=_without_dac_override())
    finally:
        (docs / "private").chmod(0o755)
    summary = json.loads(result.stdout)
    assert result.returncode == 1 and summary["deleted"] == 0, result.stderr
    assert any(f["path"] == str(docs / "private") and "cannot list folder" in f["error"] for f in summary["failed"])
    assert json.loads(_cli(home, "status", "--json").stdout)["documents"] == 7


# --- 10. concurrent use of the embedded store ----------------------------------------------------
def test_store_in_use_gives_a_clear_busy_error_and_ingest_waits(tmp_path, docs):
    settings = Settings(home=tmp_path / "home")
    holder = Runtime(settings)
    _ = holder.store  # another process's view: the embedded store is open here
    busy = _cli(settings.home, "status", "--json", env={"RAGKB_STORE_READ_WAIT_S": "1"})
    assert busy.returncode == 75, busy.stderr
    assert "in use by another process" in busy.stderr and "Traceback" not in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
    ingest = subprocess.Popen(
        [sys.executable, "-m", "ragkb.cli", "ingest", str(docs), "--json"],
        env={**os.environ, "RAGKB_HOME": str(settings.home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(5)
    assert ingest.poll() is None  # waiting, not dead
    holder.close()
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert json.loads(out)["added"] == 6


# --- 14. type by content, renames, users without groups ------------------------------------------
def test_extension_less_files_are_ingested_and_renames_are_not_reembedded(settings, runtimes, docs):
    (docs / "README").write_text("Project Quokka\n\nQuokka backups run nightly at 02:00 and are kept for 35 days.\n")
    (docs / "Apache-2.0").write_text("Apache License Version 2.0\n\nTERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n")
    ingestor = runtimes.ingestor(settings)
    report = ingestor.run([docs])
    assert report.added == 8 and not report.skipped
    (docs / "README").rename(docs / "README.txt")
    again = ingestor.run([docs])
    assert (again.added, again.deleted, again.chunks) == (1, 1, 0)  # linked to the stored content
    hits = Retriever(runtimes.runtime(settings)).retrieve("How long are Quokka backups kept?", top_k=1).passages
    assert hits[0].source == str(docs / "README.txt")


def test_a_user_may_have_no_group(tmp_path):
    users_file = tmp_path / "users.toml"
    result = subprocess.run(
        [sys.executable, "-m", "ragkb.cli", "users", "add", "visitor", "--password", "pw"],
        env={**os.environ, "RAGKB_USERS_FILE": str(users_file)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "visitor" in users_file.read_text() and "groups = []" in users_file.read_text()
