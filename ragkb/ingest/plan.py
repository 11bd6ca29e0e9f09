"""Scan + manifest -> what a run must do. Reads the manifest (and hashes files whose size or
mtime changed) but writes nothing, so the plan can be inspected or tested on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ragkb.ingest import manifest as mf
from ragkb.ingest.scan import Candidate, FileFailure, ScanResult


@dataclass
class Work:
    """A file whose content must be stored (or linked to content stored under another name)."""

    candidate: Candidate
    sha256: str
    doc_id: str
    previous: mf.SourceRow | None


@dataclass
class Plan:
    work: list[Work] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Same bytes as last time under a new mtime: only the manifest's size/mtime change.
    touched: list[Candidate] = field(default_factory=list)
    # Known failures of the same bytes, reported again without parsing again.
    failed: list[FileFailure] = field(default_factory=list)
    # Files that could not even be hashed.
    unreadable: list[FileFailure] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def doc_id_for(sha256: str, doc_type: str, signature: str) -> str:
    """The same bytes parse differently as text and as PDF, and a changed pipeline must
    re-embed; a rename (same bytes, same type) keeps its id and is never embedded again."""
    return hashlib.sha256(f"{sha256}|{doc_type}|{signature}".encode()).hexdigest()[:32]


def make_plan(scanned: ScanResult, roots: list[Path], manifest: mf.Manifest, signature: str) -> Plan:
    plan = Plan()
    for candidate in scanned.candidates:
        key = str(candidate.path)
        previous = manifest.source(key)
        same_acl = previous is not None and previous.acl == _norm(candidate.acl)
        if (
            previous is not None
            and (previous.size, previous.mtime_ns) == (candidate.size, candidate.mtime_ns)
            and previous.sha256 is not None
            and previous.doc_id == doc_id_for(previous.sha256, candidate.doc_type, signature)
        ):  # same bytes as last time, handled by the same pipeline: no need to hash again
            if previous.status == mf.FAILED:
                plan.failed.append(FileFailure(key, previous.error or "failed"))
                continue
            if same_acl and manifest.doc_state(previous.doc_id) == mf.READY:
                plan.unchanged.append(key)
                continue
        try:
            sha = sha256_file(candidate.path)
        except OSError as exc:
            plan.unreadable.append(FileFailure(key, f"cannot read file: {exc.strerror or exc}"))
            continue
        doc_id = doc_id_for(sha, candidate.doc_type, signature)
        if (
            previous is not None
            and previous.status == mf.OK
            and previous.doc_id == doc_id
            and manifest.doc_state(doc_id) == mf.READY
        ):  # touched but identical
            plan.touched.append(candidate)
            if same_acl:
                plan.unchanged.append(key)
                continue
        plan.work.append(Work(candidate, sha, doc_id, previous))
    plan.gone = _gone(scanned, roots, manifest)
    return plan


def _gone(scanned: ScanResult, roots: list[Path], manifest: mf.Manifest) -> list[str]:
    """Recorded files under the roots that the scan no longer saw; never under a protected
    prefix (an unreadable or missing folder), and not the files failed closed (the writer
    records their failure, which removes their content)."""
    present = {str(c.path) for c in scanned.candidates} | {f.path for f in scanned.failed_closed}
    prefixes = [str(root) if root.is_file() else str(root).rstrip("/") + "/" for root in roots]
    protected = [p.rstrip("/") for p in scanned.protected]
    return [
        row.path
        for row in manifest.sources()
        if row.path not in present
        and any(row.path == p or row.path.startswith(p) for p in prefixes)
        and not any(row.path == p or row.path.startswith(p + "/") for p in protected)
    ]


def _norm(acl: list[str] | None) -> list[str] | None:
    return None if acl is None else sorted(acl)
