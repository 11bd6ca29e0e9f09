"""RAGKB_HOME/service.json: how the CLI and the UI find the service that owns a home.

Written by `ragkb serve` with mode 0600 (it holds the local token), removed when it stops. A
file left by a killed service is recognised as stale: its pid is gone or /healthz does not
answer, and clients then work in-process.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ragkb.config import Settings


@dataclass(frozen=True)
class ServiceInfo:
    url: str
    pid: int
    token: str


def service_file(settings: Settings) -> Path:
    return settings.home / "service.json"


def write(settings: Settings, info: ServiceInfo) -> None:
    path = service_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".service.{os.getpid()}.json")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": info.url, "pid": info.pid, "token": info.token, "started_at": time.time()}, handle)
    os.replace(tmp, path)


def remove(settings: Settings, pid: int) -> None:
    """Remove the file only if it is still ours (a newer service may have replaced it)."""
    current = read(settings)
    if current is not None and current.pid == pid:
        service_file(settings).unlink(missing_ok=True)


def read(settings: Settings) -> ServiceInfo | None:
    try:
        data = json.loads(service_file(settings).read_text(encoding="utf-8"))
        return ServiceInfo(str(data["url"]), int(data["pid"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(settings: Settings, timeout_s: float = 2.0) -> ServiceInfo | None:
    """The live service of this home, or None (no file, a dead pid, or no answer)."""
    info = read(settings)
    if info is None or not _alive(info.pid):
        return None
    try:
        response = httpx.get(f"{info.url}/healthz", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return info if response.status_code == 200 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
