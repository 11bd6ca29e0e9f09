"""`ragkb serve`: run the API on uvicorn and the Streamlit UI beside it, for one RAGKB_HOME.

Secure by default: without a users file every caller is the single user and sees every
document, so the service then refuses any address but loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

from ragkb.config import Settings
from ragkb.errors import Busy, ConfigError
from ragkb.locks import HomeLock
from ragkb.service import discovery
from ragkb.users import users_configured

log = logging.getLogger(__name__)

SERVICE_URL_ENV = "RAGKB_SERVICE_URL"
SERVICE_TOKEN_ENV = "RAGKB_SERVICE_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    if not is_loopback(host) and not users_configured(settings):
        raise ConfigError(
            f"refusing to serve on {host} without a users file: single-user mode shows every document to every caller. "
            "Set RAGKB_USERS_FILE (`ragkb users add`, `ragkb users token`) or bind 127.0.0.1"
        )


def ui_command(host: str, port: int) -> list[str]:
    import ui

    app_path = Path(ui.__file__).resolve().parent / "app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
    ]  # fmt: skip


def serve(settings: Settings, host: str, port: int, ui: bool = True, ui_host: str | None = None, ui_port: int = 8501) -> None:
    import uvicorn

    from ragkb.service.app import create_app

    check_bind(settings, host)
    if ui and ui_host is not None:
        check_bind(settings, ui_host)
    lock = HomeLock(settings.home / "service.lock", "the service", error=Busy)
    lock.acquire(0)  # one service per home; the error names the pid of the other one
    token = secrets.token_urlsafe(32)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    if host in ("0.0.0.0", "::"):
        url = f"http://127.0.0.1:{port}"  # local clients reach a wildcard bind on loopback
    app = create_app(settings, local_token=token)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    ui_process: subprocess.Popen[bytes] | None = None
    discovery.write(settings, discovery.ServiceInfo(url, os.getpid(), token))
    try:
        if ui:
            env = {**os.environ, SERVICE_URL_ENV: url, SERVICE_TOKEN_ENV: token, "RAGKB_HOME": str(settings.home)}
            ui_process = subprocess.Popen(ui_command(ui_host or host, ui_port), env=env)
        server.run()
    finally:
        if ui_process is not None:
            ui_process.terminate()
            try:
                ui_process.wait(10)
            except subprocess.TimeoutExpired:
                ui_process.kill()
        discovery.remove(settings, os.getpid())
        lock.release()
