"""The documents of a knowledge base as readers and admins see them: the list a caller may read,
uploads, deletion with a receipt, the text around a cited passage, and the original file.

Shared by the HTTP service (and through it the UI) and the CLI, so each rule — which rows a
reader may see, where uploads go, what a deletion proves — is written once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ragkb import acl
from ragkb.config import Settings
from ragkb.errors import BadInput, NotFound
from ragkb.ingest import Ingestor
from ragkb.ingest import manifest as mf
from ragkb.parse import SUPPORTED_SUFFIXES, detect_type
from ragkb.runtime import Runtime
from ragkb.store import schema

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def readable_rows(runtime: Runtime, groups: list[str] | None, status: str | None = None) -> list[mf.SourceRow]:
    """Manifest rows this reader may see. A failed file's ACL is the one on record for it."""
    rows = runtime.manifest.sources()
    return [r for r in rows if (status is None or r.status == status) and acl.may_read(groups, r.acl, runtime.settings)]


@dataclass(frozen=True)
class DeletionReceipt:
    doc_id: str
    paths: list[str]
    points_removed: int
    points_remaining: int


def delete_document(runtime: Runtime, doc_id: str) -> DeletionReceipt:
    """Remove a document (every path holding that content) and prove it: the receipt counts the
    points that were in the store and the points still there afterwards (must be 0). Uploaded
    copies under RAGKB_HOME/uploads are deleted too; files in source folders are the owner's."""
    paths = [row.path for row in runtime.manifest.sources(doc_id)]
    if not paths:
        raise NotFound(f"no document {doc_id} in the knowledge base")
    query = schema.doc_filter(doc_id)
    before = runtime.store.count(query)
    for path in paths:
        forget(runtime, Path(path))
    return DeletionReceipt(doc_id, paths, before, runtime.store.count(query))


def context_around(runtime: Runtime, doc_id: str, chunk_index: int) -> tuple[str, str]:
    """The text of the chunks just before and after a cited one (for the source preview)."""
    wanted = {chunk_index - 1, chunk_index + 1}
    texts = {
        int(hit.payload.get(schema.CHUNK_INDEX, -1)): str(hit.payload.get(schema.TEXT, ""))
        for hit in runtime.store.scroll(schema.doc_filter(doc_id), fields=[schema.CHUNK_INDEX, schema.TEXT])
        if int(hit.payload.get(schema.CHUNK_INDEX, -1)) in wanted
    }
    return texts.get(chunk_index - 1, ""), texts.get(chunk_index + 1, "")


def readable_file(runtime: Runtime, path: str, groups: list[str] | None) -> Path:
    """An ingested original this reader may download, still on disk; NotFound otherwise (the
    same answer for "not ingested" and "not yours", so paths cannot be probed)."""
    row = runtime.manifest.source(path)
    if row is None or row.status != mf.OK or not acl.may_read(groups, row.acl, runtime.settings) or not Path(path).is_file():
        raise NotFound("no such document, or it is no longer available")
    return Path(path)


# --- uploads -------------------------------------------------------------------------------------
def upload_dir(settings: Settings) -> Path:
    return settings.home / "uploads"


def safe_filename(name: str) -> str:
    """A browser-supplied name becomes one plain file name inside the uploads folder."""
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    if not base:
        raise BadInput(f"unusable file name {name!r}")
    return base


def save_uploads(settings: Settings, files: list[tuple[str, bytes]], groups: list[str] | None = None) -> list[Path]:
    """Write uploaded files under RAGKB_HOME/uploads, all or none: every file is checked (size,
    name, type) before the first is written. Each file lands atomically, restricted to `groups`
    when given (its ACL sidecar is written before the file appears); returns their paths."""
    folder = upload_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data in files:
            if len(data) > settings.max_file_mb * 1024 * 1024:
                raise BadInput(f"{name}: {len(data) / 1048576:.1f} MB exceeds RAGKB_MAX_FILE_MB={settings.max_file_mb:g}")
            target = folder / safe_filename(name)
            tmp = target.with_name(f".{target.name}.{time.time_ns()}.part")
            tmp.write_bytes(data)
            staged.append((tmp, target))
            if target.suffix.lower() not in SUPPORTED_SUFFIXES and detect_type(tmp) is None:
                raise BadInput(f"{target.name}: not a supported document type")
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        if groups:  # the ACL first: the new file is never in place without it
            acl.write_sidecar(target, groups)
        tmp.replace(target)
        if not groups:
            acl.write_sidecar(target, None)  # removes an earlier upload's restriction
    return [target for _, target in staged]


def forget(runtime: Runtime, path: Path) -> int:
    """Remove a file, or every file under a folder, from the base (uploaded copies too)."""
    target = str(path.expanduser().resolve())
    prefix = target.rstrip("/") + "/"
    paths = [row.path for row in runtime.manifest.sources() if row.path == target or row.path.startswith(prefix)]
    removed = Ingestor(runtime).forget(path)
    for forgotten in paths:
        remove_upload(runtime.settings, forgotten)
    return removed


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
