"""Files uploaded on the admin page: saved under RAGKB_HOME/uploads with an ACL sidecar, and
deleted again when they are forgotten."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ragkb import acl
from ragkb.config import Settings
from ragkb.parse import SUPPORTED_SUFFIXES

UPLOAD_SUFFIXES = sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def upload_dir(settings: Settings) -> Path:
    return settings.home / "uploads"


def safe_filename(name: str) -> str:
    """A browser-supplied name becomes one plain file name inside the uploads folder."""
    base = Path(name.replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if not base:
        raise ValueError(f"unusable file name {name!r}")
    return base


def save_upload(settings: Settings, name: str, data: bytes, groups: list[str] | None = None) -> Path:
    """Write an uploaded file under RAGKB_HOME/uploads (atomically), restricted to `groups`
    when given (an ACL sidecar); returns its path."""
    folder = upload_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_filename(name)
    if target.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{target.name}: unsupported file type (supported: {', '.join(UPLOAD_SUFFIXES)})")
    tmp = target.with_name(f".{target.name}.{time.time_ns()}.part")
    tmp.write_bytes(data)
    if groups:  # the ACL first: the new file is never in place without it
        acl.write_sidecar(target, groups)
    tmp.replace(target)
    if not groups:
        acl.write_sidecar(target, None)  # removes an earlier upload's restriction
    return target


def remove_upload(settings: Settings, path: str) -> bool:
    """After forgetting an uploaded file, its copy under uploads/ goes too (nothing else would
    ever remove it). Files elsewhere are the owner's and stay."""
    target = Path(path)
    if not target.is_relative_to(upload_dir(settings).resolve()):
        return False
    removed = False
    for candidate in (target, acl.sidecar_path(target)):
        if candidate.is_file():
            candidate.unlink()
            removed = True
    return removed
