"""The Streamlit UI through Streamlit's AppTest, against a REAL `ragkb serve` process: real app
script, real HTTP API, real embedded Qdrant, real MiniLM, real manifest; answers from backend
`none` or the loopback Ollama server. The UI talks only to the API and never opens the store.

Services (each start loads the models, ~15-30 s), one per module, ingested through the API:
- `single`: single-user mode (no users file), answers from the module's loopback Ollama, the
  fixture documents plus the hostile corpus (Markdown in names, folders, headings, subjects);
- `users_kb`: users alice (finance), bob (hr), root (admin), ACL sidecars on the memo and the
  email, broken files, and the folders as configured [[sources]];
- an empty base of its own, for the empty page and a service that goes away.
Tests that change a base (upload, forget, move a file) put it back as it was.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import hostile
from conftest import FIXTURES, REPO, make_bad_files
from ollama_server import Message, OllamaServer
from ragkb.client import ServiceClient
from ragkb.config import Settings
from ragkb.service import discovery
from ragkb.users import add_user
from service_process import Service
from ui import kbui, markup, sources

APP = REPO / "ui" / "app.py"
TIMEOUT = 120
BAD_COUNT = 9  # make_bad_files creates nine broken inputs
PARKING = "The staff car park closes at 22:00 on weekdays; visitors park on Elm Street."
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "root": "root-pw-3"}
FORBIDDEN = ("ragkb.runtime", "ragkb.ingest", "ragkb.store", "ragkb.retrieve", "ragkb.answer", "ragkb.documents")


# --- the services ------------------------------------------------------------------------------
def _no_answer(messages: list[Message]) -> str:
    """The default: no answer, so every retrieved passage is offered as a chip (as with `none`)."""
    return "I don't know."


class Responder:
    """The module's Ollama answers through this; a test swaps `respond` (and `rewrite`, what a
    follow-up question becomes) and gets the defaults back after."""

    def __init__(self) -> None:
        self.respond: Callable[[list[Message]], Any] = _no_answer
        self.rewrite: Callable[[str], str] = lambda question: question

    def __call__(self, messages: list[Message]) -> Any:
        follow_up = hostile.follow_up(messages)  # the service's condense prompt
        return self.rewrite(follow_up) if follow_up is not None else self.respond(messages)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def _docs(root: Path) -> Path:
    docs = root / "docs"
    shutil.copytree(FIXTURES / "docs", docs)
    for path in docs.iterdir():
        path.chmod(0o644)
    (docs / "policies").mkdir()
    (docs / "policies" / "parking.md").write_text(f"# Parking\n\n{PARKING}\n")
    return docs


def _operator(home: Path) -> ServiceClient:
    info = discovery.read(Settings(home=home))
    assert info is not None
    return ServiceClient(info.url, info.token)


def _ingest(home: Path, paths: list[Path]) -> dict[str, Any]:
    client = _operator(home)
    try:
        return client.wait(client.ingest([str(p) for p in paths]))["summary"]  # type: ignore[no-any-return]
    finally:
        client.close()


@pytest.fixture(scope="module")
def responder() -> Iterator[Responder]:
    yield Responder()


@pytest.fixture(scope="module")
def ollama(responder: Responder) -> Iterator[OllamaServer]:
    with OllamaServer(responder) as server:
        yield server


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, ollama: OllamaServer) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui-single")
    docs = _docs(root)
    cases = hostile.make_hostile_docs(root / "hostile")
    (cases[2].path.parent / "empty.txt").write_bytes(b"")  # a failure listed under the hostile folder
    home = root / "home"
    service = Service(home, env={"RAGKB_LLM_BACKEND": "ollama", "RAGKB_OLLAMA_URL": ollama.url}).wait_ready()
    try:
        summary = _ingest(home, [docs, root / "hostile"])
        assert summary["added"] == 7 + len(cases) and len(summary["failed"]) == 1, summary
        yield {"home": home, "docs": docs, "cases": cases, "service": service, "ollama": ollama}
    finally:
        service.stop()


@pytest.fixture(scope="module")
def users_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui-users")
    docs = _docs(root)
    (docs / "fake-memo.pdf.acl").write_text("finance\n")
    (docs / "fake-email.eml.acl").write_text("hr\n")
    bad = root / "bad"
    make_bad_files(bad)
    config = root / "ragkb.toml"
    config.write_text(f'[[sources]]\npath = "{docs}"\n\n[[sources]]\npath = "{bad}"\n')
    users = root / "users.toml"
    home = root / "home"
    for name, group in (("alice", "finance"), ("bob", "hr"), ("root", "admin")):
        add_user(Settings(home=home, users_file=users), name, PASSWORDS[name], [group])
    env = {"RAGKB_USERS_FILE": str(users), "RAGKB_MAX_FILE_MB": "1", "RAGKB_CONFIG": str(config)}
    service = Service(home, env=env).wait_ready()
    try:
        summary = _ingest(home, [])  # the configured sources
        # scanned.pdf has no text layer: it fails, or it is read by OCR where Tesseract is installed
        ocr = summary["added"] == 8 and not any(f["path"].endswith("scanned.pdf") for f in summary["failed"])
        assert summary["added"] == 7 + ocr and len(summary["failed"]) == BAD_COUNT - ocr, summary
        yield {"home": home, "docs": docs, "bad": bad, "users": users, "service": service, "added": summary["added"],
               "failed": len(summary["failed"])}  # fmt: skip
    finally:
        service.stop()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    yield
    st.cache_resource.clear()  # closes the cached HTTP clients (on_release)
    st.cache_data.clear()


def _connect(monkeypatch: pytest.MonkeyPatch, home: Path, users: Path | None = None) -> None:
    """The app's environment, as `ragkb serve` sets it for the UI it starts."""
    info = discovery.read(Settings(home=home))
    assert info is not None
    monkeypatch.setenv("RAGKB_HOME", str(home))
    monkeypatch.setenv("RAGKB_SERVICE_URL", info.url)
    monkeypatch.setenv("RAGKB_SERVICE_TOKEN", info.token)
    if users is not None:
        monkeypatch.setenv("RAGKB_USERS_FILE", str(users))


@pytest.fixture
def on_single(single: dict[str, Any], responder: Responder, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    _connect(monkeypatch, single["home"])
    yield single
    responder.reset()


@pytest.fixture
def on_users(users_kb: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    _connect(monkeypatch, users_kb["home"], users_kb["users"])
    return users_kb


# --- helpers -----------------------------------------------------------------------------------
def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question)
    return _ok(at.run())


def _shown(markdown: str) -> str:
    """The text a Markdown string built with `markup.md` shows: escapes resolved, the invisible
    word joiners gone, hard line breaks as line breaks."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(markup.WORD_JOINER, "").replace("  \n", "\n")


def _values(elements: Any) -> str:
    return " ".join(_shown(e.value) for e in elements)


def _chip_map(pills: Any) -> dict[int, str]:
    """Citation chips of one answer: number -> label as shown."""
    labels = [_shown(label) for label in pills.options]
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


def _admin(at: AppTest) -> AppTest:
    at.switch_page("admin.py")
    return _ok(at.run())


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# --- chat --------------------------------------------------------------------------------------
def test_streamed_answer_with_chips_passage_feedback_and_a_follow_up(on_single, responder, monkeypatch):
    def cite_the_memo(messages: list[Message]) -> str:
        n = re.search(r"\[(\d+)\] \(fake-memo\.pdf", messages[-1]["content"]).group(1)  # type: ignore[union-attr]
        return f"The memo is dated May 5, 2023 [{n}]. Nothing else is known [99]."

    sent: list[dict[str, Any]] = []
    real_ask_stream = ServiceClient.ask_stream

    def spy(self: ServiceClient, question: str, **options: Any) -> Any:
        sent.append({"question": question, **options})
        return real_ask_stream(self, question, **options)

    monkeypatch.setattr(ServiceClient, "ask_stream", spy)
    responder.respond = cite_the_memo
    home, ollama = on_single["home"], on_single["ollama"]
    chats_before, audit_before = len(ollama.requests_to("/api/chat")), len(_audit(home))
    at = _ok(_app().run())
    assert "ollama:llama3.2:3b" in _values(at.sidebar.markdown)
    assert len(at.chat_input) == 1 and not at.pills
    _ask(at, "When was the memo written?")
    assert len(ollama.requests_to("/api/chat")) == chats_before + 1

    user, answer = at.chat_message
    assert user.name == "user" and answer.name == "assistant"
    text = _shown(answer.markdown[0].value)
    assert "May 5, 2023" in text and "[99]" not in text
    assert "[99]" in _values(answer.warning)  # the invalid citation was removed, and that is said
    (n, label), = _chip_map(at.pills[0]).items()
    assert label == f"[{n}] fake-memo.pdf p.1" and f"[{n}]" in text
    caption = answer.caption[-1]
    assert re.search(r"Answered by ollama:llama3.2:3b · (load_models [\d,]+ ms · )?retrieve [\d,]+ ms .*· generate [\d,]+ ms · total [\d,]+ ms", _shown(caption.value))
    assert "RAGKB_LLM_BACKEND=ollama" in _shown(caption.proto.help)  # why this backend answers

    at.pills[0].set_value(n)
    _ok(at.run())
    preview = at.html[0].value
    assert "<mark" in preview and "May 5, 2023" in preview.split("<mark", 1)[1]
    assert any("fake-memo.pdf" in _shown(m.value) and "page 1" in m.value for m in at.markdown)
    assert [_shown(b.label) for b in at.download_button] == ["Download fake-memo.pdf"]
    memo = on_single["docs"] / "fake-memo.pdf"
    client = _operator(home)
    try:  # what the button's deferred download calls
        assert sources.file_reader(client, str(memo))() == memo.read_bytes()
    finally:
        client.close()

    (record,) = _audit(home)[audit_before:]  # audited by the service, with the UI's channel
    assert record["channel"] == "ui" and record["user"] == "anonymous" and record["question"] == "When was the memo written?"
    assert record["backend"] == "ollama:llama3.2:3b" and record["flagged"] is False
    assert str(memo) in record["sources"] and len(record["doc_ids"]) == len(record["sources"])

    at.feedback[0].set_value(1)  # thumbs up
    _ok(at.run())
    assert "Thanks" in _values(at.chat_message[1].caption)
    with sqlite3.connect(home / "service.sqlite") as db:
        ratings = db.execute("SELECT f.rating FROM feedback f JOIN answers a USING (answer_id) ORDER BY f.created_at").fetchall()
    assert ratings[-1] == (1,)

    # The conversation stays and goes with the next question; the first answer keeps its chip.
    responder.respond = lambda messages: "Nothing relevant."
    rewritten = f"Is there a canteen near the memo's office ![](http://{hostile.HOST}/q.png)?"
    responder.rewrite = lambda question: rewritten
    _ask(at, "And is there a canteen?")
    first_answer = at.session_state["messages"][1]["result"]["answer"]
    assert "May 5, 2023" in first_answer
    assert sent[-1]["history"] == [
        {"role": "user", "content": "When was the memo written?"},
        {"role": "assistant", "content": first_answer},
    ]
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    last = at.chat_message[3]
    understood = next(c.value for c in last.caption if "Understood as" in c.value)
    assert _shown(understood) == f"Understood as: {rewritten}" and _live_markup(understood) == []
    assert "cites none" in _values(last.warning)  # flagged: shown, with the passages
    assert "not cited" in at.pills[-1].label
    assert _audit(home)[-1]["flagged"] is True


def test_document_type_and_folder_filters_change_what_is_cited(on_single):
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

    folder = str(on_single["docs"] / "policies")
    assert folder in at.sidebar.selectbox(key="folder").options  # offered from GET /v1/documents
    at.sidebar.multiselect(key="file_types").set_value([])
    at.sidebar.selectbox(key="folder").set_value(folder)
    _ask(at, "heading list email table slide memo")
    assert [label.split(" ")[1] for label in _chip_map(at.pills[-1]).values()] == ["parking.md"]


def test_citation_of_a_deleted_file_has_no_download(on_single, tmp_path: Path):
    """The preview still shows the passage; the download appears only for a file on disk."""
    parking = on_single["docs"] / "policies" / "parking.md"
    moved = tmp_path / "parking.md"
    shutil.move(parking, moved)
    try:
        at = _ok(_app().run())
        at.sidebar.selectbox(key="folder").set_value(str(parking.parent))
        _ask(at, "When does the car park close?")
        (n,) = _chip_map(at.pills[-1])
        at.pills[-1].set_value(n)
        _ok(at.run())
        assert "22:00" in at.html[0].value and not at.download_button
        assert any("no longer available" in c.value for c in at.caption)
    finally:
        shutil.move(moved, parking)


def test_too_long_question_is_refused_with_a_clear_error(on_single, monkeypatch):
    """The box stops at RAGKB_MAX_QUESTION_CHARS (the browser refuses more, Streamlit cuts what
    a client sends anyway); a longer question arriving regardless gets an error, not an answer."""
    monkeypatch.setenv("RAGKB_MAX_QUESTION_CHARS", "50")
    before = len(_audit(on_single["home"]))
    at = _ok(_app().run())
    assert at.chat_input[0].max_chars == 50
    monkeypatch.setattr(st, "chat_input", lambda *args, **kwargs: "Why? " * 30)
    _ok(at.run())
    assert "the question is 149 characters long; the limit is 50" in _values(at.error)
    assert not at.chat_message and len(_audit(on_single["home"])) == before  # neither asked nor kept


# --- where the service is ----------------------------------------------------------------------
def test_empty_base_says_so_and_a_stopped_service_is_reported(tmp_path: Path, monkeypatch):
    home = tmp_path / "empty"
    service = Service(home).wait_ready()
    try:
        _connect(monkeypatch, home)
        at = _ok(_app().run())
        assert "No documents are ingested yet" in at.info[0].value
        _ask(at, "Anything?")
        assert _shown(at.chat_message[1].markdown[0].value) == "I don't know based on the available documents."
        assert not at.pills
    finally:
        service.stop()
    _ok(at.run())  # the same session, the service gone: how to start it, not a traceback
    assert "does not answer" in _values(at.error) and "ragkb serve" in _values(at.error)
    assert not at.chat_input


def test_without_a_service_the_ui_says_to_start_one_and_opens_nothing(tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RAGKB_HOME", str(home))
    at = _ok(_app().run())
    assert "No ragkb service is running" in _values(at.error) and "ragkb serve" in _values(at.error)
    assert not at.chat_input and not at.text_input and not at.sidebar.markdown
    # A service.json left by a killed service (its pid gone) is no service either.
    home.mkdir()
    (home / "service.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 1, "token": "t"}))
    at = _ok(_app().run())
    assert "No ragkb service is running" in _values(at.error) and not at.chat_input
    assert sorted(p.name for p in home.iterdir()) == ["service.json"]  # no store, manifest or lock opened here


def test_the_ui_finds_the_service_of_its_home_through_service_json(single, monkeypatch):
    """`ragkb ui` started by hand: no RAGKB_SERVICE_* variables, the same RAGKB_HOME."""
    monkeypatch.setenv("RAGKB_HOME", str(single["home"]))
    at = _ok(_app().run())
    assert len(at.chat_input) == 1 and not at.error
    assert str(single["docs"] / "policies") in at.sidebar.selectbox(key="folder").options


def test_ui_never_imports_the_knowledge_base():
    """The UI talks only to the API: no module of it imports the store, ingest, retrieval or
    answering code, directly or through what it imports."""
    imported: set[str] = set()
    for path in (REPO / "ui").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            bad = [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
            assert not bad, f"{path.name} imports {bad}"
            imported.update(n for n in names if n.split(".")[0] in ("ragkb", "ui"))
    assert "ragkb.client" in imported
    # What those imports pull in, in a fresh interpreter (the UI's own process). The page
    # scripts (app, chat, admin) import no page script.
    code = (
        "import importlib, json, sys\n"
        f"for name in {sorted(imported)!r}:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except ImportError:\n        pass  # `from module import name` of a class or function\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert not [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert "qdrant_client" not in loaded and "torch" not in loaded


# --- sign-in and ACLs --------------------------------------------------------------------------
def test_login_required_when_users_are_configured(on_users):
    at = _ok(_app().run())
    assert not at.chat_input and at.text_input(key="login_password").proto.type == 1  # password field

    _sign_in(at, "alice", "not-her-password")
    assert [_shown(e.value) for e in at.error] == ["invalid user name or password"]
    assert not at.chat_input and "identity" not in at.session_state

    _sign_in(at, "nobody", PASSWORDS["alice"])
    assert [_shown(e.value) for e in at.error] == ["invalid user name or password"]  # no user probing

    _sign_in(at, "alice", PASSWORDS["alice"])
    assert len(at.chat_input) == 1 and not at.error
    assert any("Signed in as **alice**" in m.value for m in at.sidebar.markdown)
    assert "login_password" not in at.session_state  # the password is not kept in the session


def test_users_only_ever_see_citations_they_may_read(on_users):
    memo, email = str(on_users["docs"] / "fake-memo.pdf"), str(on_users["docs"] / "fake-email.eml")
    question = "test email roses violets memo May 5 2023"
    seen: dict[str, set[str]] = {}
    for user, hidden in (("alice", email), ("bob", memo)):
        at = _sign_in(_ok(_app().run()), user, PASSWORDS[user])
        at.sidebar.slider(key="top_k").set_value(20)  # more than the base holds: everything readable
        _ask(at, question)
        labels = " ".join(_chip_map(at.pills[-1]).values())
        seen[user] = set(labels.split())
        assert Path(hidden).name not in labels
        assert Path(hidden).name not in _shown(at.chat_message[-1].markdown[0].value)
        record = _audit(on_users["home"])[-1]
        assert record["user"] == user and record["channel"] == "ui" and hidden not in record["sources"]
    assert "fake-memo.pdf" in seen["alice"] and "fake-email.eml" in seen["bob"]
    # Neither may open the admin page: it is not even registered for them.
    with pytest.raises(ValueError):
        at.switch_page("admin.py")


def test_trusted_header_names_the_user(on_users, monkeypatch):
    monkeypatch.setenv("RAGKB_TRUSTED_USER_HEADER", "X-Remote-User")
    headers: dict[str, str] = {}
    monkeypatch.setattr(type(st.context), "headers", property(lambda self: headers))

    at = _ok(_app().run())
    assert not at.chat_input and "X-Remote-User" in _values(at.error)  # no header: no access

    headers["X-Remote-User"] = "mallory"
    at = _ok(_app().run())
    assert not at.chat_input and "mallory" in _values(at.error)  # unknown to the users file

    headers["X-Remote-User"] = "alice"
    at = _ok(_app().run())
    assert len(at.chat_input) == 1 and not at.text_input  # no password form in header mode
    _ask(at, "test email roses violets")
    assert "fake-email.eml" not in " ".join(_chip_map(at.pills[-1]).values())
    assert _audit(on_users["home"])[-1]["user"] == "alice"


def test_missing_users_file_fails_closed(tmp_path: Path, monkeypatch):
    """RAGKB_USERS_FILE naming no file is an error, never single-user mode with every document."""
    monkeypatch.setenv("RAGKB_USERS_FILE", str(tmp_path / "missing-users.toml"))
    at = _ok(_app().run())
    assert "missing-users.toml" in _values(at.error) and "does not exist" in _values(at.error)
    assert not at.chat_input and not at.text_input and not at.sidebar.markdown


# --- admin -------------------------------------------------------------------------------------
def test_admin_page_shows_status_and_failed_files_with_reasons(on_users, tmp_path: Path):
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    metrics = _metrics(at)
    assert metrics["Documents"] == str(on_users["added"]) and metrics["Failed files"] == str(on_users["failed"])
    assert int(metrics["Chunks"]) > 7 and metrics["Last ingest"] != "never"
    failed = at.dataframe[0].value
    rows = {Path(f).name: reason for f, reason in zip(failed["file"], failed["reason"])}
    expected = make_bad_files(tmp_path / "again")  # the same names and expected reason words
    assert set(rows) == set(expected) - ({"scanned.pdf"} if on_users["failed"] < BAD_COUNT else set())
    expected = {name: words for name, words in expected.items() if name in rows}
    for name, words in expected.items():
        assert words in rows[name], (name, rows[name])


def test_upload_ingests_and_forget_removes(on_single):
    home = on_single["home"]
    at = _admin(_ok(_app().run()))  # single-user mode: everyone is admin
    documents = int(_metrics(at)["Documents"])
    at.file_uploader(key="upload_files").set_value(
        ("../../Bicycle policy.md", b"# Bicycles\n\nBicycles are stored in the basement cage, code 4711.\n", "text/markdown")
    )
    at.text_input(key="upload_groups").input("")
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())
    saved = home / "uploads" / "Bicycle policy.md"  # the name is kept, the path is not
    assert saved.is_file()
    assert any("added 1" in s.value and "failed 0" in s.value for s in at.success), _values(at.success)
    assert _metrics(at)["Documents"] == str(documents + 1)

    at.switch_page("chat.py")
    _ok(at.run())
    at.sidebar.multiselect(key="file_types").set_value(["md"])
    _ask(at, "Where are bicycles stored?")
    assert "Bicycle policy.md" in " ".join(_chip_map(at.pills[-1]).values())

    at = _admin(at)
    at.selectbox(key="forget_path").set_value(str(saved))
    next(b for b in at.button if b.label == "Forget").click()
    _ok(at.run())
    assert re.search(r"Forgot 1 file\(s\): .*Bicycle policy\.md\. [1-9]\d* passage\(s\) removed from the index, 0 remaining", _values(at.success))
    assert not saved.exists()  # the uploaded copy goes too
    assert _metrics(at)["Documents"] == str(documents)
    assert str(saved) not in at.selectbox(key="forget_path").options

    at.switch_page("chat.py")
    _ok(at.run())
    _ask(at, "Where are bicycles stored?")
    assert "Bicycle policy.md" not in " ".join(_chip_map(at.pills[-1]).values())


def test_upload_with_groups_writes_an_acl(on_users):
    home = on_users["home"]
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    at.file_uploader(key="upload_files").set_value(("salaries.txt", b"The salary review happens every March.\n", "text/plain"))
    at.text_input(key="upload_groups").input("finance")
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())
    try:
        assert (home / "uploads" / "salaries.txt.acl").read_text().strip() == "finance"
        for user, visible in (("bob", False), ("alice", True)):
            chat = _sign_in(_ok(_app().run()), user, PASSWORDS[user])
            chat.sidebar.slider(key="top_k").set_value(20)
            _ask(chat, "When is the salary review?")
            assert ("salaries.txt" in " ".join(_chip_map(chat.pills[-1]).values())) is visible
    finally:
        client = _operator(home)
        try:
            client.forget(str(home / "uploads" / "salaries.txt"))
        finally:
            client.close()


def test_upload_too_large_is_refused_by_the_ui_and_by_the_service(on_users, monkeypatch):
    big = ("big.txt", b"word " * 300_000, "text/plain")  # 1.5 MB; the service's limit is 1 MB
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    at.file_uploader(key="upload_files").set_value(big)
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())  # the UI's own limit is the default 100 MB: the service refuses it
    assert "The upload was refused: big.txt: 1.4 MB exceeds RAGKB_MAX_FILE_MB=1" in _values(at.error)

    monkeypatch.setenv("RAGKB_MAX_FILE_MB", "1")  # as `ragkb serve` starts it: the same limit
    at.file_uploader(key="upload_files").set_value(big)
    next(b for b in at.button if b.label == "Upload and ingest").click()
    _ok(at.run())
    assert _values(at.error) == "big.txt: 1.4 MB exceeds 1 MB"  # not even sent
    assert not (on_users["home"] / "uploads" / "big.txt").exists()


def test_reingest_of_the_configured_sources_runs_as_a_job(on_users):
    at = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    at.button(key="reingest").click()
    _ok(at.run())
    result = _values(at.warning) + _values(at.success)
    assert f"Re-ingest of the configured sources finished: added 0 · updated 0 · unchanged {on_users['added']}" in result, result
    assert _metrics(at)["Documents"] == str(on_users["added"])


def test_admin_page_is_hidden_from_non_admins(on_users):
    at = _sign_in(_ok(_app().run()), "alice", PASSWORDS["alice"])
    with pytest.raises(ValueError):
        at.switch_page("admin.py")
    root = _admin(_sign_in(_ok(_app().run()), "root", PASSWORDS["root"]))
    assert [t.label for t in root.tabs] == ["Status", "Add documents", "Forget a document"]


# --- documents that carry Markdown (issue 10, item 2) -------------------------------------------
_MARKDOWN = MarkdownIt("commonmark")
# remark-gfm's autolink literals, as Streamlit's frontend finds them in the text after escapes
# are resolved; only at the start of a text, after white space or after punctuation.
_GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)", re.IGNORECASE | re.ASCII)
_GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
_LIVE_MATH = re.compile(r"(?<!\\)(?:\\\\)*\$")  # a "$" after an even number of backslashes


def _boundary(text: str, i: int) -> bool:
    return i == 0 or text[i - 1].isspace() or unicodedata.category(text[i - 1])[0] in "PS"


def _live_markup(markdown: str) -> list[str]:
    """What in `markdown` a browser would fetch, follow or typeset: images, links, autolinks,
    raw HTML, GFM's bare URLs and emails, and `$` math. Empty for inert text."""
    found: list[str] = []

    def walk(tokens: list[Any]) -> None:
        for token in tokens:
            if token.type in ("image", "link_open", "html_inline", "html_block"):
                found.append(f"{token.type}: {token.attrs or token.content}")
            if token.type == "text":
                text = token.content
                for i in range(len(text)):
                    if _boundary(text, i) and _GFM_URL.match(text, i):
                        found.append(f"bare url: {text[i:i + 40]}")
                    if _boundary(text, i) and text[i - 1 : i] != "/" and _GFM_EMAIL.match(text, i):
                        found.append(f"bare email: {text[i:i + 40]}")
            walk(token.children or [])

    walk(_MARKDOWN.parse(markdown))
    if _LIVE_MATH.search(markdown):
        found.append("math")
    return found


PAYLOADS = [
    hostile.SUBJECT,
    hostile.HEADING,
    f"/srv/docs/{hostile.FOLDER}/canteen.md",
    hostile.FILE_NAME,
    hostile.MODEL_ANSWER,
    "autolinks <http://203.0.113.5/a> <mailto:m@example.org> and bare http://203.0.113.5/b, www.example.org, m@example.org",
    "![a][1]\n[1]: http://203.0.113.5/ref.png",
    "<img src=//203.0.113.5/i.png>",
    "$x$ and $$y^2$$",
    "[text](javascript:alert(1)) :red[red] <script>alert(1)</script> &lt;img&gt;",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_renders_untrusted_text_as_its_characters(payload: str):
    assert _live_markup(payload), "the payload should be live Markdown (else this test proves nothing)"
    shown = markup.md(payload)
    assert _live_markup(shown) == []
    assert _shown(shown) == payload  # nothing lost, nothing added that is visible
    assert _live_markup(markup.md(shown)) == []  # escaping twice is still inert


def _rendered_markdown(at: AppTest) -> list[str]:
    """Every string the app handed Streamlit to render as Markdown: text elements, alerts,
    labels of chips and buttons, tooltips, table cells."""
    texts = [e.value for kind in ("markdown", "caption", "warning", "error", "info", "success") for e in at.get(kind)]
    texts += [e.proto.help for e in at.caption if e.proto.help]
    texts += [e.value for e in at.title] + [e.value for e in at.subheader]
    for pills in at.pills:
        texts += [pills.label, *pills.options]
    texts += [b.label for b in at.button] + [b.label for b in at.download_button]
    for table in at.table:
        texts += [str(v) for v in table.value.to_numpy().ravel()]
    return texts


def test_document_markdown_is_shown_never_fetched_or_linked(on_single, responder):
    """Section titles, email subjects, file and folder names and the model's answer reach the
    chips, the source card, captions and the admin page as text: nothing to fetch or follow."""
    cases = on_single["cases"]
    responder.respond = hostile.hostile_model
    at = _ok(_app().run())
    folder = str(cases[2].path.parent)
    assert folder in at.sidebar.selectbox(key="folder").options  # a plain-text widget: as it is
    for case in cases:
        _ask(at, case.question)
        answer = at.chat_message[-1]
        assert "It says so in the document" in _shown(answer.markdown[0].value)
        assert hostile.MODEL_ANSWER.split("\n")[0] in _shown(answer.markdown[0].value)  # as typed, not typeset
        chips = _chip_map(at.pills[-1])
        (n,) = [n for n, label in chips.items() if case.path.name[:20] in label]
        at.pills[-1].set_value(n)
        _ok(at.run())
        shown = " ".join(_shown(text) for text in _rendered_markdown(at))
        assert case.payload in shown, (case.name, shown)
        for text in _rendered_markdown(at):
            assert _live_markup(text) == [], (case.name, text)
    at.switch_page("admin.py")
    _ok(at.run())
    texts = _rendered_markdown(at)
    assert texts and all(_live_markup(text) == [] for text in texts), texts
    assert any(hostile.FOLDER in f for f in at.dataframe[0].value["file"])  # plain-text cells


# --- helpers and shipped configuration ---------------------------------------------------------
def test_preview_is_escaped():
    html = sources.highlighted_html("<img src=http://evil.example/a.png>", "<script>1</script>", "")
    assert "<img" not in html and "<script" not in html and "&lt;img" in html


def test_conversation_history_sent_with_a_question():
    messages = [
        {"role": "user", "content": "q1"}, {"role": "assistant", "result": {"answer": "a1"}},
        {"role": "user", "content": "q2"}, {"role": "assistant", "error": "Could not answer"},
        {"role": "user", "content": "q3"}, {"role": "assistant", "result": {"answer": "a3" * 20_000}},
    ]  # fmt: skip
    turns = kbui.history(messages)
    assert [t["content"][:2] for t in turns] == ["q1", "a1", "q3", "a3"]  # the failed turn is left out
    assert len(turns[-1]["content"]) == 20_000  # the API's limit per turn
    assert len(kbui.history(messages * 20)) == kbui.HISTORY_MESSAGES


def test_ages_read_like_a_person_would_say_them():
    assert [markup.fmt_ago(1000 - d, now=1000) for d in (5, 120, 7200, 86400, 3 * 86400)] == [
        "just now", "2 min ago", "2 h ago", "1 day ago", "3 days ago"
    ]
    assert markup.fmt_ago(None) == "—"


def test_passage_context_drops_the_chunk_overlap():
    before, after = sources.strip_overlap("one two three four five", "four five six seven", "six seven eight nine")
    assert (before, after) == ("one two three", "eight nine")


def test_ui_files_stay_small():
    """Issue 11: a thin UI, every file of it readable in one sitting."""
    sizes = {path.name: len(path.read_text().splitlines()) for path in (REPO / "ui").glob("*.py")}
    assert max(sizes.values()) <= 300, sizes
    assert not (REPO / "ui" / "uploads.py").exists()  # uploads go through the API


def test_shipped_streamlit_config_is_private():
    root = (REPO / ".streamlit" / "config.toml").read_text()
    assert (REPO / "ui" / ".streamlit" / "config.toml").read_text() == root
    config = tomllib.loads(root)
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorLinks"] is False and config["client"]["toolbarMode"] == "viewer"
    assert config["server"]["enableXsrfProtection"] is True and config["server"]["enableStaticServing"] is False
    assert "://" not in json.dumps(config)  # no font, CDN or any other URL
