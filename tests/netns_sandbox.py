"""Run commands in a loopback-only network namespace and record every way out they try.

`enter(plan, out)` starts this file as `unshare --net --mount [--map-root-user] python
netns_sandbox.py run PLAN OUT`. Inside the new namespaces, before any step runs:

* `lo` is the only interface and is brought up; nothing else is routable, so no packet can
  leave whatever a library does;
* a private /etc/resolv.conf (`nameserver 127.0.0.1`) and /etc/nsswitch.conf (`hosts: files
  dns`) are bind-mounted, and the nscd and systemd-resolved socket folders are covered with empty
  tmpfs, so every name lookup, from Python or from native code, goes to dns_stub.DnsStub on
  127.0.0.1:53, which answers NXDOMAIN and logs the name;
* each step runs under `strace -f` for connect/sendto/sendmsg/sendmmsg: in a loopback-only
  namespace a connect to an outside address fails at once with ENETUNREACH, invisible to
  everyone but strace, so the trace is what shows a hard-coded IP (native code included);
* with `guard`, Python steps also load tests/egress_guard (an audit hook that refuses and logs
  any non-loopback lookup or connect made through Python's socket module).

A step is `{"name", "argv", "env" (null drops a variable), "timeout", "guard"}` (run to completion) or, with `"ui":
{...}`, a server started in the background, fetched over loopback with real HTTP GETs, then
optionally driven by headless Chromium (run as its own traced step, `browse` below), then
stopped. Each step writes OUT/<name>/{dns.log,strace.log,guard.log,stdout,stderr} and OUT/
steps.json lists rc, seconds and what the UI fetches returned. The assertions are the caller's
(tests/test_no_egress.py); `outside_addresses()` reads a trace.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GUARD = HERE / "egress_guard"
TRACED = "connect,sendto,sendmsg,sendmmsg"
RESOLV_CONF = (
    "nameserver 127.0.0.1\n"
    "# a bare name is tried as <name>.localhost first, then as itself: both reach the log\n"
    "search localhost\n"
    "options attempts:1 timeout:2\n"
)
HIDDEN_RESOLVERS = ["/run/nscd", "/var/run/nscd", "/var/db/nscd", "/run/systemd/resolve"]


# --- outside the namespace ----------------------------------------------------------------------


def enter(plan: list[dict[str, Any]], out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the plan in fresh network + mount namespaces; unprivileged users get a user namespace."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=1))
    prefix = ["unshare", "--net", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    command = [*prefix, sys.executable, str(Path(__file__).resolve()), "run", str(out / "plan.json"), str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def missing_tools() -> list[str]:
    return [tool for tool in ("unshare", "mount", "strace") if shutil.which(tool) is None]


_V4 = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_V6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')


def is_local(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def outside_addresses(trace: Path) -> list[str]:
    """`syscall address:port = result` for every traced call aimed at a non-loopback address."""
    if not trace.exists():
        return []
    found = []
    for line in trace.read_text(errors="replace").splitlines():
        call = re.match(r"\s*(?:\[pid\s+)?\d*\]?\s*(connect|sendto|sendmsg|sendmmsg)\(", line)
        if not call:
            continue
        for port, address in [*_V4.findall(line), *_V6.findall(line)]:
            if not is_local(address):
                result = re.search(r"\) = (.*)$", line)
                found.append(f"{call.group(1)} {address}:{port} = {result.group(1) if result else '(unfinished)'}")
    return list(dict.fromkeys(found))


# --- inside the namespace -----------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _loopback_up() -> None:
    """Bring lo up; any other interface (sit0, tunl0... that some kernels add to every new
    namespace) must be down, and stays so."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

    def flags(sock: socket.socket, name: str) -> int:
        return struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH22x", name.encode(), 0)))[1]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        up = [name for _, name in socket.if_nameindex() if name != "lo" and flags(sock, name) & IFF_UP]
        if up:
            raise SystemExit(f"not a fresh network namespace: {up} up")
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags(sock, "lo") | IFF_UP))


def _private_resolver(etc: Path) -> None:
    """Every lookup in this mount namespace goes to 127.0.0.1:53, and only there."""
    etc.mkdir(parents=True, exist_ok=True)
    covered: set[str] = set()
    for folder in HIDDEN_RESOLVERS:  # nscd / resolved answer over unix sockets, from outside
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in covered:
            covered.add(real)
            _mount("-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", real)
    nsswitch = Path("/etc/nsswitch.conf").read_text() if Path("/etc/nsswitch.conf").exists() else ""
    lines = [line for line in nsswitch.splitlines() if not line.strip().startswith("hosts:")]
    (etc / "nsswitch.conf").write_text("\n".join([*lines, "hosts: files dns", ""]))
    (etc / "resolv.conf").write_text(RESOLV_CONF)
    for name in ("resolv.conf", "nsswitch.conf"):
        target = os.path.realpath(f"/etc/{name}")
        if not os.path.exists(target) and os.path.dirname(target) in covered:
            Path(target).write_text("")  # a link into a folder just covered with tmpfs (resolved)
        if os.path.exists(target):
            _mount("--bind", str(etc / name), target)
        elif name == "resolv.conf":  # never create files outside our tmpfs: that would be the host's
            raise SystemExit(f"cannot place a private /etc/resolv.conf: {target} does not exist")
        # no nsswitch.conf at all: glibc's built-in default is dns then files, which is fine
    if Path("/etc/resolv.conf").read_text() != RESOLV_CONF:
        raise SystemExit("the private /etc/resolv.conf did not take")


def _traced(step_dir: Path, argv: list[str]) -> list[str]:
    # -v -s 0: every address in full (sendmmsg's vector too), no payload bytes
    quiet = ["-qq", "-e", "signal=none", "-v", "-s", "0"]
    return ["strace", "-f", "--seccomp-bpf", *quiet, "-e", f"trace={TRACED}", "-o", str(step_dir / "strace.log"), "--", *argv]


def _step_env(step: dict[str, Any], step_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in step.get("env", {}).items():  # null removes a variable
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if step.get("guard"):
        env["PYTHONPATH"] = os.pathsep.join([str(GUARD), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        env["EGRESS_GUARD_LOG"] = str(step_dir / "guard.log")
    return env


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            return {"url": url, "status": response.status, "body": body[:20_000].decode(errors="replace")}
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        return {"url": url, "error": f"{type(exc).__name__}: {exc}"}


def _run_step(step: dict[str, Any], step_dir: Path) -> dict[str, Any]:
    env = _step_env(step, step_dir)
    started = time.monotonic()
    with (step_dir / "stdout").open("wb") as stdout, (step_dir / "stderr").open("wb") as stderr:
        try:
            rc = subprocess.run(_traced(step_dir, step["argv"]), env=env, stdout=stdout, stderr=stderr, timeout=step.get("timeout", 600)).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"rc": rc, "seconds": round(time.monotonic() - started, 1)}


def _run_ui(step: dict[str, Any], step_dir: Path, out: Path, stub: Any) -> dict[str, Any]:
    ui = step["ui"]
    env = _step_env(step, step_dir)
    started = time.monotonic()
    base = f"http://127.0.0.1:{ui['port']}"
    result: dict[str, Any] = {"fetched": []}
    with (step_dir / "stdout").open("wb") as log:
        server = subprocess.Popen(_traced(step_dir, step["argv"]), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + ui.get("start_timeout", 120)
            while _get(f"{base}/_stcore/health").get("body") != "ok":
                if server.poll() is not None or time.monotonic() > deadline:
                    result["rc"] = server.poll() if server.poll() is not None else "no health in time"
                    return result
                time.sleep(0.5)
            result["fetched"] = [_get(f"{base}/"), _get(f"{base}/_stcore/health"), _get(f"{base}/_stcore/host-config")]
            if ui.get("browse"):
                browser_dir = out / f"{step['name']}-browser"
                argv = [sys.executable, str(Path(__file__).resolve()), "browse", base, str(browser_dir), json.dumps(ui["browse"])]
                browser = {**step, "name": browser_dir.name, "ui": None, "argv": argv}
                browser_dir.mkdir()
                stub.log = browser_dir / "dns.log"  # from here on the server and the browser share a log
                result["browser"] = _run_step(browser, browser_dir)
            result["rc"] = server.poll()  # None: still serving, as it should be
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def run(plan_file: Path, out: Path) -> None:
    from dns_stub import DnsStub

    _loopback_up()
    _private_resolver(out / "etc")
    stub = DnsStub(out / "setup-dns.log")
    results = []
    try:
        for step in json.loads(plan_file.read_text()):
            step_dir = out / step["name"]
            step_dir.mkdir()
            stub.log = step_dir / "dns.log"
            stub.log.touch()
            outcome = _run_ui(step, step_dir, out, stub) if step.get("ui") else _run_step(step, step_dir)
            results.append({"name": step["name"], **outcome})
            (out / "steps.json").write_text(json.dumps(results, indent=1))
    finally:
        stub.close()


def browse(url: str, out: Path, options: dict[str, Any]) -> None:
    """Load a page in headless Chromium and list every URL the page requested.

    With `question`, the page is ragkb's UI: wait for the chat box, ask, wait for the answer.
    With `idle_ms`, the page is a plain one with a text box, served here over loopback HTTP
    (url is ignored): type into it and stay that long, to record what Chromium looks up on its
    own for any page.
    """
    from playwright.sync_api import expect, sync_playwright

    if options.get("idle_ms"):
        url = _serve_plain_page()

    requests: list[str] = []
    report: dict[str, Any] = {"requests": requests}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=options["chromium"], args=options["args"])
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.goto(url, wait_until="domcontentloaded")
            if options.get("idle_ms"):
                page.locator("textarea").first.fill("hello")
                page.wait_for_timeout(options["idle_ms"])
            else:
                chat_box = page.locator('[data-testid="stChatInput"] textarea')
                expect(chat_box).to_be_visible(timeout=120_000)
                chat_box.fill(options["question"])
                chat_box.press("Enter")
                expect(page.locator('[data-testid="stChatMessage"]').nth(1)).to_be_visible(timeout=180_000)
                page.wait_for_timeout(options.get("settle_ms", 3000))
                report["answer"] = page.locator('[data-testid="stChatMessage"]').nth(1).inner_text()
            report["title"] = page.title()
        finally:
            browser.close()
            (out / "browser.json").write_text(json.dumps(report, indent=1))


def _serve_plain_page() -> str:
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"<!doctype html><title>control</title><form><textarea name=q></textarea></form>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> None:
    parser = argparse.ArgumentParser(description="loopback-only sandbox (see the module docstring)")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("plan", type=Path)
    run_parser.add_argument("out", type=Path)
    browse_parser = sub.add_parser("browse")
    browse_parser.add_argument("url")
    browse_parser.add_argument("out", type=Path)
    browse_parser.add_argument("options")
    args = parser.parse_args()
    if args.command == "run":
        sys.path.insert(0, str(HERE))
        run(args.plan, args.out)
    else:
        browse(args.url, args.out, json.loads(args.options))


if __name__ == "__main__":
    main()
