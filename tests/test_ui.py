"""The Streamlit UI through Streamlit's AppTest: real app script, real embedded Qdrant, real
MiniLM, real manifest; answers from backend `none` or the loopback Ollama server.

One knowledge base is ingested per module (it takes seconds) and every test gets its own copy
of RAGKB_HOME, so uploads, forgets and audit records never leak between tests.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import hostile
from conftest import FIXTURES, REPO, make_bad_files
from ollama_server import OllamaServer
from ragkb.config import Settings
from ragkb.ingest import Ingestor
from ragkb.runtime import Runtime
from ragkb.users import add_user
from ui import markup, sources, uploads

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
    with Runtime(Settings(home=home, max_file_mb=1), embedder=embedder) as runtime:  # closed: the app opens the store
        report = Ingestor(runtime).run([docs, bad])
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
        assert "ollama:llama3.2:3b" in _values(at.sidebar.markdown)
        assert len(at.chat_input) == 1 and not at.pills
        _ask(at, "When was the memo written?")
        assert len(server.requests_to("/api/chat")) == 1

    user, answer = at.chat_message
    assert user.name == "user" and answer.name == "assistant"
    text = _shown(answer.markdown[0].value)
    assert "May 5, 2023" in text and "[99]" not in text
    # The invalid citation was removed, and that is said on screen.
    assert "[99]" in _values(answer.warning)
    chips = _chip_map(at.pills[0])
    assert len(chips) == 1
    (n, label), = chips.items()
    assert label == f"[{n}] fake-memo.pdf p.1" and f"[{n}]" in text
    assert re.search(r"Answered by ollama:llama3.2:3b · (load_models [\d,]+ ms · )?retrieve [\d,]+ ms .*· generate [\d,]+ ms · total [\d,]+ ms", _shown(answer.caption[-1].value))

    at.pills[0].set_value(n)
    _ok(at.run())
    preview = at.html[0].value
    assert "<mark" in preview and "May 5, 2023" in preview.split("<mark", 1)[1]
    assert any("fake-memo.pdf" in _shown(m.value) and "page 1" in m.value for m in at.markdown)
    assert [_shown(b.label) for b in at.download_button] == ["Download fake-memo.pdf"]

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
    assert "cites none" in _values(last.warning)  # flagged: shown, with the passages
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
        assert _shown(at.chat_message[1].markdown[0].value) == "I don't know based on the available documents."
        assert not at.pills
    finally:
        st.cache_resource.clear()


def test_store_held_by_another_client_is_reported_not_crashed(home: Path, monkeypatch):
    from ragkb.store import Store

    monkeypatch.setenv("RAGKB_STORE_READ_WAIT_S", "0.5")
    holder = Store(Settings(home=home))  # e.g. a `ragkb ingest` run holding the embedded Qdrant
    try:
        at = _ok(_app().run())
        _ask(at, "When was the memo written?")
        assert "in use by another process" in _shown(at.chat_message[-1].error[0].value)
        at.switch_page("admin.py")
        _ok(at.run())
        assert "Cannot open the knowledge base" in _values(at.error)
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
    assert [_shown(e.value) for e in at.error] == ["invalid user name or password"]
    assert not at.chat_input and "identity" not in at.session_state

    _sign_in(at, "nobody", PASSWORDS["alice"])
    assert [_shown(e.value) for e in at.error] == ["invalid user name or password"]  # no user probing

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
        assert Path(hidden).name not in _shown(at.chat_message[-1].markdown[0].value)
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
    assert not at.chat_input and "X-Remote-User" in _values(at.error)  # no header: no access

    headers["X-Remote-User"] = "mallory"
    at = _ok(_app().run())
    assert not at.chat_input and "mallory" in _values(at.error)  # unknown to the users file

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
    assert "Forgot 1 file" in _values(at.success)
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
    labels of chips and buttons, table cells."""
    texts = [e.value for kind in ("markdown", "caption", "warning", "error", "info", "success") for e in at.get(kind)]
    texts += [e.value for e in at.title] + [e.value for e in at.subheader]
    for pills in at.pills:
        texts += [pills.label, *pills.options]
    texts += [b.label for b in at.button] + [b.label for b in at.download_button]
    for table in at.table:
        texts += [str(v) for v in table.value.to_numpy().ravel()]
    return texts


@pytest.fixture(scope="module")
def hostile_base(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[Path, list[hostile.Case]]:
    root = tmp_path_factory.mktemp("ui-hostile")
    cases = hostile.make_hostile_docs(root / "docs")
    (cases[2].path.parent / "empty.txt").write_bytes(b"")  # a failure listed under the hostile folder
    home = root / "home"
    with Runtime(Settings(home=home), embedder=embedder) as runtime:
        report = Ingestor(runtime).run([root / "docs"])
    assert report.added == len(cases) and len(report.failed) == 1, report
    return home, cases


def test_document_markdown_is_shown_never_fetched_or_linked(hostile_base, tmp_path: Path, monkeypatch):
    """Section titles, email subjects, file and folder names and the model's answer reach the
    chips, the source card, captions and the admin page as text: nothing to fetch or follow."""
    base_home, cases = hostile_base
    home = tmp_path / "home"
    shutil.copytree(base_home, home)
    monkeypatch.setenv("RAGKB_HOME", str(home))
    try:
        with OllamaServer(hostile.hostile_model) as server:
            monkeypatch.setenv("RAGKB_LLM_BACKEND", "ollama")
            monkeypatch.setenv("RAGKB_OLLAMA_URL", server.url)
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
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_too_long_question_is_refused_with_a_clear_error(home: Path, monkeypatch):
    """The box stops at RAGKB_MAX_QUESTION_CHARS (the browser refuses more, Streamlit cuts what
    a client sends anyway); a longer question arriving regardless gets an error, not an answer."""
    monkeypatch.setenv("RAGKB_MAX_QUESTION_CHARS", "50")
    at = _ok(_app().run())
    assert at.chat_input[0].max_chars == 50
    monkeypatch.setattr(st, "chat_input", lambda *args, **kwargs: "Why? " * 30)
    _ok(at.run())
    assert "the question is 149 characters long; the limit is 50" in _values(at.error)
    assert not at.chat_message and not _audit(home)  # neither asked nor kept


def test_missing_users_file_fails_closed(home: Path, tmp_path: Path, monkeypatch):
    """RAGKB_USERS_FILE naming no file is an error, never single-user mode with every document."""
    monkeypatch.setenv("RAGKB_USERS_FILE", str(tmp_path / "missing-users.toml"))
    at = _ok(_app().run())
    assert "missing-users.toml" in _values(at.error) and "does not exist" in _values(at.error)
    assert not at.chat_input and not at.text_input and not at.sidebar.markdown


# --- helpers and shipped configuration ---------------------------------------------------------
def test_preview_and_upload_names_are_escaped():
    html = sources.highlighted_html("<img src=http://evil.example/a.png>", "<script>1</script>", "")
    assert "<img" not in html and "<script" not in html and "&lt;img" in html
    assert uploads.safe_filename("../../etc/passwd") == "passwd"
    assert uploads.safe_filename("C:\\Users\\x\\report (v2).pdf") == "report (v2).pdf"
    with pytest.raises(ValueError):
        uploads.safe_filename("..")


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


def test_shipped_streamlit_config_is_private():
    root = (REPO / ".streamlit" / "config.toml").read_text()
    assert (REPO / "ui" / ".streamlit" / "config.toml").read_text() == root
    config = tomllib.loads(root)
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorLinks"] is False and config["client"]["toolbarMode"] == "viewer"
    assert config["server"]["enableXsrfProtection"] is True and config["server"]["enableStaticServing"] is False
    assert "://" not in json.dumps(config)  # no font, CDN or any other URL
