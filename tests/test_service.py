"""`ragkb serve`: the real server process on a loopback port, called with httpx (JSON and
Server-Sent Events), the official `openai` client, and the `ragkb` CLI as its client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, REPO
from service_process import Service

SALARY = "The CEO salary is 987,654 euros per year and the bonus pool is called Falcon-Seven."


def _cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAGKB_HOME": str(home), "RAGKB_LLM_BACKEND": "none", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ragkb.cli", *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    """A service with users alice (eng), bob (hr) and root (admin) over a corpus with ACLs."""
    root = tmp_path_factory.mktemp("service")
    corpus = root / "corpus"
    shutil.copytree(FIXTURES / "docs", corpus / "public")
    (corpus / "hr").mkdir()
    (corpus / "hr" / "salaries.md").write_text(f"# Executive pay\n\n{SALARY}\n")
    (corpus / "hr" / "salaries.md.acl").write_text("hr\n")
    (corpus / "eng").mkdir()
    (corpus / "eng" / "runbook.md").write_text("# Deploy runbook\n\nDeploys happen on Tuesdays after the change board approves them.\n")
    (corpus / "eng" / "runbook.md.acl").write_text("eng\n")
    home = root / "home"
    env = {"RAGKB_USERS_FILE": str(root / "users.toml")}
    tokens = {}
    for name, group in (("alice", "eng"), ("bob", "hr"), ("root", "admin")):
        assert _cli(home, "users", "add", name, "--password", "pw", "--group", group, env=env).returncode == 0
        tokens[name] = _cli(home, "users", "token", name, env=env).stdout.strip()
    service = Service(home, env=env).wait_ready()
    yield {"url": service.url, "tokens": tokens, "corpus": corpus, "home": home, "env": env, "service": service}
    service.stop()


def _client(kb: dict, user: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {kb['tokens'][user]}"} if user else {}
    return httpx.Client(base_url=kb["url"], headers=headers, timeout=300)


def _ingest(kb: dict, paths: list[str]) -> dict:
    with _client(kb, "root") as http:
        started = http.post("/v1/ingest", json={"paths": paths})
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        for _ in range(600):
            job = http.get(f"/v1/ingest/{job_id}").json()
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(0.5)
    raise TimeoutError("ingest job did not finish")


@pytest.fixture(scope="module")
def ingested(kb):
    job = _ingest(kb, [str(kb["corpus"])])
    assert job["state"] == "done" and job["summary"]["added"] == 8, job
    return kb


def test_health_readiness_schema_and_no_external_docs_page(kb):
    with httpx.Client(base_url=kb["url"]) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        schema = http.get("/openapi.json").json()
        assert {"/v1/ask", "/v1/search", "/v1/chat/completions", "/v1/documents", "/v1/ingest"} <= set(schema["paths"])
        assert http.get("/docs").status_code == 404  # FastAPI's page would load Swagger UI from a CDN


def test_every_request_needs_a_valid_token_when_users_exist(kb):
    with httpx.Client(base_url=kb["url"]) as http:
        missing = http.post("/v1/search", json={"query": "wine"})
        wrong = http.post("/v1/search", json={"query": "wine"}, headers={"Authorization": "Bearer rkb_forged"})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication"
    assert wrong.status_code == 401 and "invalid API token" in wrong.json()["error"]["message"]


def test_each_user_sees_only_their_groups_inside_the_query(ingested):
    for user, visible, hidden in (("alice", "eng/runbook.md", "hr/salaries.md"), ("bob", "hr/salaries.md", "eng/runbook.md")):
        with _client(ingested, user) as http:
            passages = http.post("/v1/search", json={"query": "CEO salary bonus pool deploy Tuesday", "top_k": 50}).json()["passages"]
            documents = [d["path"] for d in http.get("/v1/documents").json()["documents"]]
        sources = {p["source"] for p in passages}
        assert any(s.endswith(visible) for s in sources) and not any(s.endswith(hidden) for s in sources)
        assert any(d.endswith(visible) for d in documents) and not any(d.endswith(hidden) for d in documents)


def test_ask_json_and_server_sent_events(ingested):
    with _client(ingested, "alice") as http:
        answer = http.post("/v1/ask", json={"question": "How many bottles of wine were there?"}).json()
        assert answer["answer_id"] and answer["passages"][0]["source"].endswith("fake-memo.pdf")
        events = []
        with http.stream("POST", "/v1/ask", json={"question": "How many bottles of wine were there?"}, headers={"Accept": "text/event-stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line.split(":", 1)[1])))
    assert events[0][0] == "passages" and events[-1][0] == "done"
    assert events[-1][1]["answer_id"] and events[0][1]["passages"][0]["source"].endswith("fake-memo.pdf")
    records = [json.loads(line) for line in (ingested["home"] / "audit.jsonl").read_text().splitlines()]
    assert any(r["user"] == "alice" and r["channel"] == "api" for r in records)


def test_openai_client_against_chat_completions(ingested):
    import openai

    client = openai.OpenAI(base_url=f"{ingested['url']}/v1", api_key=ingested["tokens"]["bob"])
    assert {m.id for m in client.models.list()} >= {"ragkb"}
    reply = client.chat.completions.create(model="ragkb", messages=[{"role": "user", "content": "What is the CEO salary?"}])
    assert "987,654" in reply.choices[0].message.content
    assert reply.model_extra["citations"] or "salaries.md" in json.dumps(reply.model_extra)
    chunks = list(client.chat.completions.create(model="ragkb", messages=[{"role": "user", "content": "What is the CEO salary?"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "987,654" in text and chunks[-1].choices[0].finish_reason == "stop"
    alice = openai.OpenAI(base_url=f"{ingested['url']}/v1", api_key=ingested["tokens"]["alice"])
    hidden = alice.chat.completions.create(model="ragkb", messages=[{"role": "user", "content": "What is the CEO salary?"}])
    assert "987,654" not in hidden.choices[0].message.content


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/ask", b"{not json", 422),
        ("POST", "/v1/ask", {"question": "q", "colour": "red"}, 422),
        ("POST", "/v1/ask", {"question": "why " * 2000}, 413),
        ("POST", "/v1/ask", {"question": ""}, 422),
        ("POST", "/v1/search", {"query": "x", "top_k": 10_000}, 422),
        ("DELETE", "/v1/documents/0123456789abcdef", None, 404),
        ("GET", "/v1/ingest/nope", None, 404),
        ("POST", "/v1/feedback", {"answer_id": "nope", "rating": 1}, 404),
        ("POST", "/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404),
        ("GET", "/v1/nothing-here", None, 404),
        # a NUL in a path: found by the fuzzing test below as a 500 from the file system
        ("POST", "/v1/forget", {"path": "/srv/docs/a\u0000b.txt"}, 422),
        ("POST", "/v1/ingest", {"paths": ["/srv/docs/a\u0000b"]}, 422),
        ("POST", "/v1/search", {"query": "x", "filters": {"folder": "/srv\u0000"}}, 422),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(kb, method, path, body, status):
    with _client(kb, "root") as http:
        response = http.request(method, path, **({"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}))
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_admin_actions_are_refused_to_readers(ingested):
    with _client(ingested, "alice") as http:
        assert http.post("/v1/ingest", json={"paths": ["/etc"]}).status_code == 403
        assert http.delete("/v1/documents/0123").status_code == 403
        assert http.get("/metrics").status_code == 403
    with _client(ingested, "root") as http:
        metrics = http.get("/metrics")
    assert metrics.status_code == 200 and "ragkb_requests_total" in metrics.text


def test_feedback_on_ones_own_answer(ingested):
    with _client(ingested, "bob") as http:
        answer_id = http.post("/v1/ask", json={"question": "What is the CEO salary?"}).json()["answer_id"]
        assert http.post("/v1/feedback", json={"answer_id": answer_id, "rating": 1, "comment": "right"}).status_code == 204
    with _client(ingested, "alice") as http:  # not alice's answer
        assert http.post("/v1/feedback", json={"answer_id": answer_id, "rating": -1}).status_code == 404


def test_upload_and_delete_with_a_receipt(ingested):
    with _client(ingested, "root") as http:
        accepted = http.post("/v1/documents", files=[("files", ("canteen.md", b"# Canteen\n\nThe canteen serves soup on Fridays.\n"))], data={"groups": "hr"})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        for _ in range(600):
            if http.get(f"/v1/ingest/{job_id}").json()["state"] == "done":
                break
            time.sleep(0.5)
        doc = next(d for d in http.get("/v1/documents").json()["documents"] if d["path"].endswith("canteen.md"))
        receipt = http.delete(f"/v1/documents/{doc['doc_id']}").json()
    assert receipt["points_removed"] >= 1 and receipt["points_remaining"] == 0
    assert not Path(doc["path"]).exists()  # the uploaded copy is gone too
    with _client(ingested, "bob") as http:
        assert not any(p["source"].endswith("canteen.md") for p in http.post("/v1/search", json={"query": "soup Fridays"}).json()["passages"])


def test_cli_commands_go_through_the_running_service(ingested):
    status = _cli(ingested["home"], "status", "--json", env=ingested["env"])
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["service"]["ready"] is True  # answered by the service, which holds the store
    asked = _cli(ingested["home"], "ask", "What is the CEO salary?", "--user", "bob", "--json", env=ingested["env"])
    assert asked.returncode in (0, 1), asked.stderr
    assert any(p["source"].endswith("salaries.md") for p in json.loads(asked.stdout)["passages"])
    denied = _cli(ingested["home"], "ask", "What is the CEO salary?", "--user", "alice", "--json", env=ingested["env"])
    assert not any(p["source"].endswith("salaries.md") for p in json.loads(denied.stdout)["passages"])
    again = _cli(ingested["home"], "ingest", str(ingested["corpus"]), "--json", env=ingested["env"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] >= 8


def test_non_loopback_bind_without_users_is_refused(tmp_path):
    result = _cli(tmp_path / "home", "serve", "--host", "0.0.0.0", "--no-ui")
    assert result.returncode == 2 and "refusing to serve on 0.0.0.0 without a users file" in result.stderr


@pytest.mark.slow
def test_service_killed_mid_ingest_finishes_the_job_after_a_restart(tmp_path):
    from test_crash import _write_corpus

    from conftest import assert_consistent
    from ragkb.config import Settings
    from ragkb.ingest import Ingestor
    from ragkb.runtime import Runtime

    docs = tmp_path / "docs"
    _write_corpus(docs, 80)
    home = tmp_path / "home"
    service = Service(home).wait_ready()
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:
            job_id = http.post("/v1/ingest", json={"paths": [str(docs)]}).json()["job_id"]
            for _ in range(1200):
                progress = http.get(f"/v1/ingest/{job_id}").json()["progress"]
                if progress["done"]:
                    break
                time.sleep(0.1)
        assert 0 < progress["done"] < 80, progress  # killed with work done and work left
    finally:
        service.kill()
    restarted = Service(home).wait_ready()
    try:
        with httpx.Client(base_url=restarted.url, timeout=60) as http:
            for _ in range(1200):
                job = http.get(f"/v1/ingest/{job_id}").json()
                if job["state"] in ("done", "failed"):
                    break
                time.sleep(0.5)
        assert job["state"] == "done", job
        assert job["summary"]["added"] + job["summary"]["unchanged"] == 80 and not job["summary"]["failed"]
    finally:
        restarted.stop()
    with Runtime(Settings(home=home)) as runtime:
        ingestor = Ingestor(runtime)
        assert_consistent(ingestor)
        assert len(ingestor.manifest.sources()) == 80


@pytest.mark.slow
def test_nightly_wrapper_succeeds_through_the_running_service(tmp_path, docs):
    home = tmp_path / "home"
    service = Service(home).wait_ready()
    try:
        env = {**os.environ, "RAGKB_HOME": str(home), "RAGKB_BIN": str(Path(sys.executable).parent / "ragkb"),
               "RAGKB_NIGHTLY_DIR": str(tmp_path / "nightly")}  # fmt: skip
        config = tmp_path / "ragkb.toml"
        config.write_text(f'[[sources]]\npath = "{docs}"\n')
        env["RAGKB_CONFIG"] = str(config)
        result = subprocess.run(["bash", str(REPO / "ingest" / "ragkb-nightly")], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads((tmp_path / "nightly" / "reports" / "latest.json").read_text())
        assert report["status"] == "ok" and report["added"] == 6
        with httpx.Client(base_url=service.url, timeout=60) as http:  # the service answers from the new documents
            assert http.post("/v1/search", json={"query": "bottles of wine"}).json()["passages"]
    finally:
        service.stop()


@pytest.mark.slow
def test_fuzzing_the_api_from_its_own_schema_finds_no_server_error(ingested):
    """schemathesis generates requests from /openapi.json, valid and invalid; none may get a 5xx.
    Starting ingest runs is left out: random paths would ingest random folders of this machine."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{ingested['url']}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "20", "--exclude-path", "/v1/ingest",
         "--header", f"Authorization: Bearer {ingested['tokens']['root']}", "--request-timeout", "120"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
