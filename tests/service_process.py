"""Start `ragkb serve` as a real process on a free loopback port, wait until it is ready, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, home: Path, env: dict[str, str] | None = None, ui: bool = False) -> None:
        self.home = home
        self.port = free_port()
        self.ui_port = free_port() if ui else None
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAGKB_HOME": str(home), "RAGKB_LLM_BACKEND": "none", **(env or {})}
        args = [sys.executable, "-m", "ragkb.cli", "serve", "--port", str(self.port)]
        args += ["--ui-port", str(self.ui_port)] if ui else ["--no-ui"]
        self.log = home.parent / f"service-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 300) -> Service:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"service not ready after {timeout_s} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
