"""The UI for real: `ragkb serve` with its UI on loopback, driven by headless Chromium through
Playwright.

A question goes in through the chat box, the answer streams from the service (its answers from
the loopback Ollama server), a citation chip opens the source preview with the cited passage
marked, the original file downloads through the API, and the page never talks to any host but
this machine: not even when documents and the model put Markdown images and links in file
names, folders, headings and email subjects. While the service and its UI run, the nightly
`ragkb ingest` on the same home goes through the service, and the UI finds what it added.

Needs Debian's chromium at /usr/bin/chromium (`make system-deps`); never `playwright install`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import hostile
from conftest import FIXTURES, REPO
from ollama_server import Message, OllamaServer
from ragkb.client import ServiceClient
from ragkb.config import Settings
from ragkb.service import discovery
from service_process import Service
from ui.markup import WORD_JOINER

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
QUESTION = "When was the memo written?"
BOILER_QUESTION = "When is the boiler room heating serviced?"


def _outside(urls: list[str]) -> list[str]:
    """Addresses that are not this machine (data: and blob: URLs never leave the page)."""
    return sorted({u for u in urls if u and urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).hostname not in LOOPBACK})


def _respond(messages: list[Message]) -> Iterator[str] | str:
    """The memo question gets a slowly streamed, well-behaved answer, the boiler question a
    plain one; the others the hostile one. A follow-up to make standalone comes back as asked."""
    asked = hostile.follow_up(messages)
    if asked is not None:
        return asked
    if QUESTION in messages[-1]["content"]:
        return _cite_the_memo(messages)
    if BOILER_QUESTION in messages[-1]["content"]:
        found = re.search(r"\[(\d+)\] \(boiler\.md", messages[-1]["content"])
        return f"The boiler room heating is serviced every October [{found.group(1) if found else 1}]."
    return hostile.hostile_model(messages)


def _cite_the_memo(messages: list[dict[str, str]]) -> Iterator[str]:
    """Cite whichever passage number the memo got; slow enough that streaming is visible."""
    prompt = messages[-1]["content"]
    found = re.search(r"\[(\d+)\] \(fake-memo\.pdf", prompt)
    n = found.group(1) if found else "1"
    words = f"According to the memo, it is dated May 5, 2023 [{n}].".split(" ")

    def stream() -> Iterator[str]:
        for i, word in enumerate(words):
            time.sleep(0.15)
            yield word if i == 0 else " " + word

    return stream()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`ragkb serve` with its UI over the fixture documents (docs/) and the hostile corpus
    (hostile/), both ingested through the API."""
    root = tmp_path_factory.mktemp("ui-browser")
    docs = root / "docs"
    shutil.copytree(FIXTURES / "docs", docs)
    for path in docs.iterdir():
        path.chmod(0o644)
    cases = hostile.make_hostile_docs(root / "hostile")
    (cases[2].path.parent / "empty.txt").write_bytes(b"")  # a failure listed under the hostile folder
    home = root / "home"
    with OllamaServer(_respond) as ollama_server:
        service = Service(home, env={"RAGKB_LLM_BACKEND": "ollama", "RAGKB_OLLAMA_URL": ollama_server.url}, ui=True)
        try:
            service.wait_ready()
            info = discovery.read(Settings(home=home))
            assert info is not None
            client = ServiceClient(info.url, info.token)
            try:
                summary = client.wait(client.ingest([str(docs), str(root / "hostile")]))["summary"]
            finally:
                client.close()
            assert summary["added"] == 6 + len(cases) and len(summary["failed"]) == 1, summary
            url = f"http://127.0.0.1:{service.ui_port}"
            deadline = time.monotonic() + 90
            while True:
                assert service.process.poll() is None, service.log.read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the UI did not come up in 90 s"
                time.sleep(0.5)
            yield {"url": url, "ollama": ollama_server, "home": home, "docs": docs, "cases": cases, "root": root}
        finally:
            service.stop()


def _browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make system-deps)")
def test_ask_in_a_real_browser_and_open_a_citation(served: dict[str, Any]):
    from playwright.sync_api import expect, sync_playwright

    url, ollama_server, docs = served["url"], served["ollama"], served["docs"]
    chats_before = len(ollama_server.requests_to("/api/chat"))
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.goto(url, wait_until="domcontentloaded")

            chat_box = page.locator('[data-testid="stChatInput"] textarea')
            expect(chat_box).to_be_visible(timeout=60_000)
            expect(page.get_by_text("ollama:llama3.2:3b").first).to_be_visible(timeout=30_000)
            chat_box.fill(QUESTION)
            chat_box.press("Enter")
            # Streamed, not shown at once: the first words are on screen before the last exist.
            page.wait_for_function(
                """() => {
                    const text = [...document.querySelectorAll('[data-testid="stChatMessage"]')].map(m => m.innerText).join(' ');
                    return text.includes('According to the memo') && !text.includes('2023');
                }""",
                timeout=60_000,
                polling=50,
            )

            chip = page.get_by_role("radio", name=re.compile(r"^\[\d+\] fake-memo\.pdf p\.1$"))
            expect(chip).to_be_visible(timeout=90_000)
            answer = page.locator('[data-testid="stChatMessage"]').nth(1)
            expect(answer).to_contain_text("dated May 5, 2023")
            expect(answer).to_contain_text(re.compile(r"Answered by ollama:llama3\.2:3b · (load_models [\d,]+ ms · )?retrieve [\d,]+ ms"))
            assert len(ollama_server.requests_to("/api/chat")) == chats_before + 1

            chip.click()
            marked = page.locator(".ragkb-source mark")
            expect(marked).to_be_visible(timeout=30_000)
            expect(marked).to_contain_text("May 5, 2023")
            expect(page.get_by_text(re.compile(r"fake-memo\.pdf.*page 1")).first).to_be_visible()
            download_button = page.get_by_role("button", name=re.compile("Download fake-memo.pdf"))
            expect(download_button).to_be_visible()
            page.wait_for_timeout(500)  # let the preview settle before the picture
            page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

            with page.expect_download(timeout=30_000) as download_info:
                download_button.click()
            download = download_info.value
            assert download.suggested_filename == "fake-memo.pdf"
            assert Path(download.path()).read_bytes() == (docs / "fake-memo.pdf").read_bytes()
        finally:
            browser.close()

    assert requests, "the page made no request at all?"
    assert not _outside(requests), f"the page reached beyond loopback: {_outside(requests)}"


_LINKS_AND_IMAGES = """() => [...document.querySelectorAll('img, a[href], image, source, video, audio, iframe')]
    .map(e => e.currentSrc || e.src || e.href?.baseVal || e.href || '')"""


def _shown(locator) -> str:
    """A locator's visible text without the invisible word joiners that keep URLs inert."""
    return locator.inner_text().replace(WORD_JOINER, "")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make system-deps)")
def test_document_markdown_makes_the_browser_fetch_nothing_outside(served: dict[str, Any]):
    """Issue 10, item 2: an email subject, an HTML heading, a folder and a file name holding
    Markdown images, and a model answering with images, links and autolinks. Every one is asked
    about, cited and opened, the admin page is shown, and the page requests nothing but this
    machine; the Markdown is on screen as text."""
    from playwright.sync_api import expect, sync_playwright

    url, cases = served["url"], served["cases"]
    requests: list[str] = []
    rendered: list[str] = []
    not_as_text: list[str] = []
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.goto(url, wait_until="domcontentloaded")
            chat_box = page.locator('[data-testid="stChatInput"] textarea')
            expect(chat_box).to_be_visible(timeout=60_000)

            folder = page.get_by_role("combobox", name="Folder")
            folder.click()  # the options list the hostile folders, as plain text
            expect(page.get_by_role("option", name=hostile.FOLDER.split("/")[0]).first).to_be_visible()
            page.keyboard.press("Escape")

            for i, case in enumerate(cases):
                chat_box.fill(case.question)
                chat_box.press("Enter")
                answer = page.locator('[data-testid="stChatMessage"]').nth(2 * i + 1)
                expect(answer).to_contain_text("It says so in the document", timeout=90_000)
                chips = answer.get_by_role("radiogroup", name=re.compile(r"^(Sources|Retrieved passages)"))
                # This case's document; the ragkb citation check may have removed the model's
                # citations (then every retrieved passage is a chip).
                chip = chips.get_by_role("radio").filter(has_text=case.path.name[:20]).first
                expect(chip).to_be_visible(timeout=30_000)
                chip.click()
                expect(answer.locator(".ragkb-source mark")).to_contain_text(case.word, timeout=30_000)
                page.wait_for_timeout(300)
                shown = _shown(answer)
                if hostile.MODEL_ANSWER.split("\n")[0] not in shown or case.payload not in shown:
                    not_as_text.append(f"{case.name}: {shown}")  # the Markdown is not on screen as typed
                rendered += page.evaluate(_LINKS_AND_IMAGES)
            page.screenshot(path=str(ARTIFACTS / "ui-hostile.png"), full_page=True)

            page.get_by_role("link", name="Admin").click()
            expect(page.get_by_text("Knowledge base admin")).to_be_visible(timeout=30_000)
            expect(page.get_by_role("heading", name="Failed files")).to_be_visible(timeout=30_000)
            page.get_by_role("tab", name="Forget a document").click()
            page.get_by_role("combobox", name="File or folder").click()
            expect(page.get_by_role("option").first).to_be_visible()
            page.wait_for_timeout(500)
            rendered += page.evaluate(_LINKS_AND_IMAGES)
        finally:
            browser.close()

    assert requests, "the page made no request at all?"
    assert not _outside(requests), f"the page reached beyond loopback: {_outside(requests)}"
    assert not _outside(rendered), f"outside images or links on the page: {_outside(rendered)}"
    assert not not_as_text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make system-deps)")
def test_nightly_cli_ingest_goes_through_the_service_and_the_ui_finds_it(served: dict[str, Any]):
    """The nightly job (`ragkb ingest <folder> --json`, cron) on the home a service owns: it
    finds RAGKB_HOME/service.json, has the service's queue run the ingest (opening the store
    itself would fail: the service holds it), and the running UI answers from the new file."""
    from playwright.sync_api import expect, sync_playwright

    home, nightly = served["home"], served["root"] / "nightly"
    nightly.mkdir()
    (nightly / "boiler.md").write_text("# Boiler\n\nThe boiler room heating is serviced every October by Vulcan Heating Ltd.\n")
    env = {**os.environ, "RAGKB_HOME": str(home)}
    run = subprocess.run(
        [sys.executable, "-m", "ragkb.cli", "ingest", str(nightly), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["added"] == 1 and not report["failed"], report
    with sqlite3.connect(home / "service.sqlite") as db:  # the service's own job journal
        jobs = [(json.loads(paths), state) for paths, state in db.execute("SELECT paths, state FROM jobs")]
    assert ([str(nightly)], "done") in jobs

    requests: list[str] = []
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.goto(served["url"], wait_until="domcontentloaded")
            chat_box = page.locator('[data-testid="stChatInput"] textarea')
            expect(chat_box).to_be_visible(timeout=60_000)
            chat_box.fill(BOILER_QUESTION)
            chat_box.press("Enter")
            answer = page.locator('[data-testid="stChatMessage"]').nth(1)
            expect(answer).to_contain_text("serviced every October", timeout=90_000)
            expect(answer.get_by_role("radio", name=re.compile(r"^\[\d+\] boiler\.md"))).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert requests and not _outside(requests), f"the page reached beyond loopback: {_outside(requests)}"
