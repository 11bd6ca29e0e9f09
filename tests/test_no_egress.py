"""Nothing leaves the machine: ingest, ask and the UI run in a loopback-only network namespace.

A Python-level guard alone cannot prove this: onnxruntime's native telemetry (pulled in by every
PDF parse) looked up mobile.events.data.microsoft.com from C++ and no Python hook saw it. So the
runs happen inside `unshare --net --mount` (tests/netns_sandbox.py): `lo` is the only interface,
the system resolver points at a recording DNS stub (tests/dns_stub.py), every process is traced
for connect/sendto/sendmsg, and Python processes also carry the audit-hook guard
(tests/egress_guard). Any name other than localhost's, any non-loopback destination, any guard
entry fails the test, whichever library or language made it.

Allowed names, precisely: `localhost` and `*.localhost` (RFC 6761: answered locally, a resolver
learns nothing from them; glibc asks DNS for localhost's AAAA when /etc/hosts only has
127.0.0.1, and the sandbox's `search localhost` turns a bare name into <name>.localhost before
the bare name itself, which is then logged too) and the reverse names of 127.0.0.0/8 and ::1.
The machine's own host name is not allowed: a lookup of it would go to the site's DNS server.

Chromium itself (not the page) looks up a few Google service names whatever page it shows (GCM
check-in, autofill predictions for any text box). The browser runs twice in the sandbox: first
idle on a plain loopback page with a text box (the control), then on ragkb's UI. The UI run may repeat
the control's names and addresses, nothing else; every request the page itself makes must be
to loopback (Playwright sees those).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import FIXTURES, REPO
from dns_stub import logged_names
from netns_sandbox import GUARD, enter, missing_tools, outside_addresses
from ragkb import offline
from test_ui_browser import CHROMIUM, CHROMIUM_ARGS

# The namespace runs without any of these, so it shows what ragkb itself switches off: CI=true
# (set by CI) and the other CI markers make onnxruntime go quiet on its own, and a developer may
# have ORT_DISABLE_TELEMETRY, DO_NOT_TRACK or HF_HUB_OFFLINE in their shell.
CI_MARKERS = [
    "CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL", "CODEBUILD_BUILD_ID",
    "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "ORT_RUNNING_UNIT_TESTS",
]  # fmt: skip
UNSET: dict[str, None] = {name: None for name in [*offline._FLAGS, *CI_MARKERS]}
QUESTION = "Who wrote the memo about the bottles of wine?"
BROWSER_CONTROL = "browser-idle"
BROWSER_IDLE_MS = 20_000  # about as long as the UI run keeps Chromium open
UI_PORT = 8765  # a fresh namespace has no other listener
API_PORT = 8766  # `ragkb serve`: the API, which the UI calls
# onnxruntime's uploader first flushes about 10 s after `import onnxruntime`; an ingest's parse
# worker can be gone by then, so the PDF path is also run on its own and held open this long.
HOLD_SECONDS = 20
PARSE_AND_HOLD = """
import sys, time
from pathlib import Path
from ragkb.config import Settings
from ragkb.parse import parse_file
blocks = parse_file(Path(sys.argv[1]), Settings())
print(len(blocks), "blocks", flush=True)
assert blocks
time.sleep(float(sys.argv[2]))
"""


def _is_local_name(name: str) -> bool:
    name = name.lower().rstrip(".")
    return (
        name == "localhost"
        or name.endswith(".localhost")
        or name.endswith(".127.in-addr.arpa")
        or name == "1." + "0." * 31 + "ip6.arpa"
    )


def _has_ipv6() -> bool:
    try:
        socket.socket(socket.AF_INET6).close()
        return True
    except OSError:
        return False


def _destination(call: str) -> str:
    return call.split(" = ")[0]  # "connect 2001:db8::1:443", without the result


def chromium_own(out: Path) -> tuple[set[str], set[str]]:
    """Names and destinations of the idle-browser control step (empty without one)."""
    control = out / BROWSER_CONTROL
    names = {name for name in logged_names(control / "dns.log") if not _is_local_name(name)}
    return names, {_destination(call) for call in outside_addresses(control / "strace.log")}


def _violations(out: Path) -> list[str]:
    """Every outside name looked up, outside address tried or guard entry, by step."""
    own_names, own_destinations = chromium_own(out)
    found = [f"setup: dns {name}" for name in logged_names(out / "setup-dns.log") if not _is_local_name(name)]
    for step in sorted(path for path in out.iterdir() if (path / "dns.log").exists() and path.name != BROWSER_CONTROL):
        browser = step.name.endswith("-browser")
        names = logged_names(step / "dns.log")
        found += [f"{step.name}: dns {n}" for n in names if not _is_local_name(n) and not (browser and n in own_names)]
        calls = outside_addresses(step / "strace.log")
        found += [f"{step.name}: {c}" for c in calls if not (browser and _destination(c) in own_destinations)]
        guard = step / "guard.log"
        found += [f"{step.name}: guard {line}" for line in (guard.read_text().splitlines() if guard.exists() else [])]
    return found


def _sandbox(out: Path, plan: list[dict[str, Any]], timeout: float) -> dict[str, dict[str, Any]]:
    """Run the plan in the namespace; fail (never skip) with the reason when that is impossible."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"the no-egress sandbox needs {', '.join(missing)} (Debian: util-linux, mount, strace)")
    result = enter(plan, out, timeout)
    if result.returncode != 0:
        pytest.fail(
            "could not run in a loopback-only network namespace (unshare --net --mount; needs root, or "
            f"unprivileged user namespaces for --map-root-user): rc={result.returncode}\n{result.stderr[-3000:]}"
        )
    return {step["name"]: step for step in json.loads((out / "steps.json").read_text())}


def _stdout(out: Path, step: str) -> str:
    return (out / step / "stdout").read_text()


def _explain(out: Path, step: str) -> str:
    stderr = out / step / "stderr"
    return (stderr.read_text() if stderr.exists() else _stdout(out, step))[-3000:]


# --- the guard and the sandbox can see what they must -----------------------------------------


def test_guard_catches_an_outbound_connection(tmp_path):
    """Without this, a broken guard would make the real test pass vacuously."""
    env = {**os.environ, "PYTHONPATH": str(GUARD), "EGRESS_GUARD_LOG": str(tmp_path / "egress.log")}
    for probe in [
        "import socket; socket.create_connection(('192.0.2.1', 443), timeout=1)",
        "import socket; socket.socket().connect(('192.0.2.1', 443))",
        "import urllib.request; urllib.request.urlopen('https://huggingface.co', timeout=1)",
    ]:
        result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "egress blocked" in result.stderr
    log = (tmp_path / "egress.log").read_text()
    assert "dns '192.0.2.1'" in log and "connect '192.0.2.1'" in log and "huggingface.co" in log


def test_sandbox_sees_native_lookups_and_connects(tmp_path):
    """C code (glibc via getent, bash's /dev/tcp) and unguarded Python, looking up names and
    connecting to outside addresses over TCP and UDP: the stub and the trace must see each one,
    and the guard must see the guarded Python one. Otherwise the main test could pass vacuously."""
    python = sys.executable
    plan = [
        {"name": "getent", "argv": ["getent", "hosts", "getent-lookup.example"]},
        {"name": "bash", "argv": ["bash", "-c", "(exec 3<>/dev/tcp/bash-lookup.example/80); (exec 4<>/dev/tcp/192.0.2.1/443); true"]},
        {
            "name": "python",
            "argv": [python, "-c", (
                "import socket\n"
                "for probe in (lambda: socket.getaddrinfo('python-lookup.example', 443),\n"
                "              lambda: socket.create_connection(('192.0.2.2', 443), timeout=2),\n"
                "              lambda: socket.socket(socket.AF_INET6).connect(('2001:db8::3', 443)),\n"
                "              lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('203.0.113.4', 9))):\n"
                "    try:\n"
                "        probe()\n"
                "    except OSError as exc:\n"
                "        print(exc)\n"
            )],
        },  # fmt: skip
        {"name": "guarded", "guard": True, "argv": [python, "-c", "import socket; socket.getaddrinfo('guarded-lookup.example', 443)"]},
        {"name": "local", "argv": ["bash", "-c", "getent hosts localhost; getent ahosts localhost; (exec 3<>/dev/tcp/127.0.0.1/9); true"]},
    ]
    out = tmp_path / "sandbox"
    steps = _sandbox(out, plan, timeout=120)

    assert steps["getent"]["rc"] == 2  # not found: the stub said NXDOMAIN
    assert "getent-lookup.example" in logged_names(out / "getent" / "dns.log")
    assert "bash-lookup.example" in logged_names(out / "bash" / "dns.log")
    assert "connect 192.0.2.1:443 = -1 ENETUNREACH (Network is unreachable)" in outside_addresses(out / "bash" / "strace.log")
    assert "python-lookup.example" in logged_names(out / "python" / "dns.log")
    python_calls = outside_addresses(out / "python" / "strace.log")
    assert any(call.startswith("connect 192.0.2.2:443") for call in python_calls), python_calls
    if _has_ipv6():
        assert any(call.startswith("connect 2001:db8::3:443") for call in python_calls), python_calls
    assert any(call.startswith("sendto 203.0.113.4:9") for call in python_calls), python_calls
    assert "guarded-lookup.example" in (out / "guarded" / "guard.log").read_text()
    assert steps["guarded"]["rc"] != 0
    assert not [v for v in _violations(out) if v.startswith("local:")], _violations(out)
    assert {v.split(":")[0] for v in _violations(out)} == {"getent", "bash", "python", "guarded"}


# --- ingest, ask and the UI, for real ------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("no-egress")
    docs = root / "docs"
    shutil.copytree(FIXTURES / "docs", docs)
    for path in docs.iterdir():
        path.chmod(0o644)
    (root / "ragkb.toml").write_text("")
    env = {
        **UNSET,
        "RAGKB_CONFIG": str(root / "ragkb.toml"),
        "RAGKB_HOME": str(root / "home"),
        "XDG_CACHE_HOME": str(root / "cache"),  # no state from earlier runs (onnxruntime keeps unsent events)
        "RAGKB_EMBED_BACKEND": "auto",  # the default runtime (OpenVINO here), telemetry package included
    }
    cli = [sys.executable, "-m", "ragkb.cli"]
    out = root / "sandbox"
    ui: dict[str, Any] = {"port": UI_PORT}
    control = []
    if CHROMIUM.exists():
        browser = {"chromium": str(CHROMIUM), "args": CHROMIUM_ARGS}
        ui["browse"] = {**browser, "question": QUESTION}
        idle = json.dumps({**browser, "idle_ms": BROWSER_IDLE_MS})
        sandbox = str(REPO / "tests" / "netns_sandbox.py")
        control = [{"name": BROWSER_CONTROL, "guard": True, "env": env, "timeout": 300,
                    "argv": [sys.executable, sandbox, "browse", "-", str(out / BROWSER_CONTROL), idle]}]  # fmt: skip
    plan = [
        {"name": "ingest", "guard": True, "env": env, "timeout": 600, "argv": [*cli, "ingest", str(docs), "--json"]},
        # the int8 runtime quantizes with NNCF (which carries a telemetry client) in a fresh home
        {"name": "ingest-int8", "guard": True, "env": {**env, "RAGKB_HOME": str(root / "home-int8"), "RAGKB_EMBED_BACKEND": "openvino-int8"},
         "timeout": 600, "argv": [*cli, "ingest", str(docs), "--json"]},
        {"name": "parse-pdf-and-wait", "guard": True, "env": env, "timeout": 300,
         "argv": [sys.executable, "-c", PARSE_AND_HOLD, str(docs / "fake-memo.pdf"), str(HOLD_SECONDS)]},
        # the default backend (probes Ollama on loopback, then answers extractively), and the
        # embedded llama.cpp, which is native code
        {"name": "ask", "guard": True, "env": env, "timeout": 600, "argv": [*cli, "ask", QUESTION, "--json"]},
        {"name": "ask-llamacpp", "guard": True, "env": {**env, "RAGKB_LLM_BACKEND": "llamacpp"}, "timeout": 600,
         "argv": [*cli, "ask", QUESTION, "--json"]},
        *control,
        {"name": "ui", "guard": True, "env": {**env, "RAGKB_LLM_BACKEND": "none"}, "timeout": 600, "ui": ui,
         "argv": [*cli, "serve", "--port", str(API_PORT), "--ui-port", str(UI_PORT)]},
    ]  # fmt: skip
    return out, _sandbox(out, plan, timeout=1500)


@pytest.mark.slow
def test_ingest_ask_and_ui_work_with_only_loopback(sandbox_run):
    out, steps = sandbox_run
    assert steps["ingest"]["rc"] == 0, _explain(out, "ingest")
    assert json.loads(_stdout(out, "ingest"))["added"] == 6
    assert steps["ingest-int8"]["rc"] == 0, _explain(out, "ingest-int8")
    assert json.loads(_stdout(out, "ingest-int8"))["added"] == 6
    (int8,) = [p for p in (out.parent / "home-int8" / "models" / "embeddings").glob("*-openvino-int8-*") if p.is_dir()]
    assert "int8" in json.loads((int8 / "ragkb-conversion.json").read_text())["quantized"]  # NNCF really ran in the sandbox
    assert steps["parse-pdf-and-wait"]["rc"] == 0, _explain(out, "parse-pdf-and-wait")
    for step in ("ask", "ask-llamacpp"):
        assert steps[step]["rc"] in (0, 1), _explain(out, step)  # 1 = answer flagged
    answer = json.loads(_stdout(out, "ask"))
    assert answer["passages"] and answer["backend"] == "extractive"
    assert json.loads(_stdout(out, "ask-llamacpp"))["backend"].startswith("llamacpp")
    ui = steps["ui"]
    assert ui["rc"] is None, _stdout(out, "ui")[-3000:]  # still serving when stopped
    page, health, _ = ui["fetched"]
    assert page.get("status") == 200 and '<div id="root">' in page["body"], page
    assert health.get("status") == 200 and health["body"] == "ok", health


@pytest.mark.slow
def test_nothing_looks_up_or_connects_outside(sandbox_run):
    out, steps = sandbox_run
    assert {"ingest", "ingest-int8", "parse-pdf-and-wait", "ask", "ask-llamacpp", "ui"} <= set(steps)
    violations = _violations(out)
    counted = Counter(violations)
    assert not violations, "egress attempted:\n" + "\n".join(f"{v} (x{n})" if n > 1 else v for v, n in counted.items())


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make system-deps)")
def test_ui_in_a_browser_stays_on_loopback(sandbox_run):
    """The browser's own lookups and connects are in the sandbox's logs too (checked above)."""
    out, steps = sandbox_run
    assert steps[BROWSER_CONTROL]["rc"] == 0, _explain(out, BROWSER_CONTROL)
    browser = steps["ui"].get("browser")
    assert browser and browser["rc"] == 0, _explain(out, "ui-browser")
    report = json.loads((out / "ui-browser" / "browser.json").read_text())
    assert report.get("answer"), report
    urls = [urlsplit(url) for url in report["requests"]]
    outside = [u.geturl() for u in urls if u.scheme not in ("data", "blob") and u.hostname not in ("127.0.0.1", "localhost", "::1")]
    assert report["requests"] and not outside, outside
    # printed with -rA / on failure: what Chromium does on its own, for the record
    print("chromium's own lookups and destinations (allowed in the UI run):", *map(sorted, chromium_own(out)))
