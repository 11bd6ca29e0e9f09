"""Walk the source roots and say, for every entry, whether it is a candidate, skipped (and
why), or failed (and why). Nothing here stops a scan: a dangling link, a link loop, an
unreadable folder or sidecar is one named entry, and the rest of the tree is still scanned.

A root that is missing or unreadable (an unmounted share) and a sub-folder that cannot be
listed are reported and *protected*: the documents ingested from under them stay in the base,
since "I cannot see it now" is not "it was deleted".
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ragkb import acl as acl_rules
from ragkb.config import Settings
from ragkb.parse import detect_type, unsupported_reason


@dataclass(frozen=True)
class Candidate:
    path: Path
    size: int
    mtime_ns: int
    acl: list[str] | None
    doc_type: str


@dataclass(frozen=True)
class FileFailure:
    path: str
    error: str


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class ScanResult:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Reported, and the file's previous content leaves the base (it must not stay readable
    # under an ACL that can no longer be checked, or as a file that no longer exists).
    failed_closed: list[FileFailure] = field(default_factory=list)
    # Reported; what is already in the base under these prefixes is kept.
    failed_kept: list[FileFailure] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[FileFailure]:
        return self.failed_kept + self.failed_closed


def scan(roots: list[Path], settings: Settings) -> ScanResult:
    result = ScanResult()
    seen: set[Path] = set()
    for root in roots:
        try:
            info = os.stat(root)
        except OSError as exc:
            _root_failure(result, root, _os_reason(exc))
            continue
        if stat.S_ISDIR(info.st_mode):
            if not os.access(root, os.R_OK | os.X_OK):
                _root_failure(result, root, "permission denied")
                continue
            entries: Iterator[Path] = _walk(root, result)
        else:
            entries = iter([root])
        for path in entries:
            if path not in seen:
                seen.add(path)
                _classify(path, settings, result, explicit=path == root)
    return result


def _root_failure(result: ScanResult, root: Path, reason: str) -> None:
    result.failed_kept.append(
        FileFailure(str(root), f"source {reason}: missing or unmounted? Its documents are kept until it is readable again")
    )
    result.protected.append(str(root))


def _walk(root: Path, result: ScanResult) -> Iterator[Path]:
    """Files under root, skipping hidden files and folders (VCS data, editor swap files) and
    ACL sidecars; a folder that cannot be listed is reported and protected."""

    def unreadable(exc: OSError) -> None:
        folder = exc.filename or str(root)
        result.failed_kept.append(
            FileFailure(str(folder), f"cannot list folder: {exc.strerror or exc}; its documents are kept")
        )
        result.protected.append(str(folder))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and not name.endswith(acl_rules.SIDECAR_SUFFIX):
                yield Path(dirpath) / name


def _classify(path: Path, settings: Settings, result: ScanResult, explicit: bool) -> None:
    key = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        result.failed_closed.append(FileFailure(key, _os_reason(exc)))
        return
    if not stat.S_ISREG(info.st_mode):
        if not stat.S_ISDIR(info.st_mode):  # a folder reached through a link is walked by its own root
            result.skipped.append(Skipped(key, f"not a regular file ({_kind(info.st_mode)})"))
        return
    doc_type = detect_type(path)
    if doc_type is None:
        reason = unsupported_reason(path)
        if explicit:  # named on the command line: the user expects it to be ingested
            result.failed_kept.append(FileFailure(key, reason))
        else:
            result.skipped.append(Skipped(key, reason))
        return
    try:
        acl = acl_rules.path_acl(path, settings)
    except acl_rules.SidecarError as exc:
        result.failed_closed.append(FileFailure(key, f"{exc}; the file is withheld until its ACL can be read"))
        return
    result.candidates.append(Candidate(path, info.st_size, info.st_mtime_ns, acl, doc_type))


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "no such file or directory (a broken symbolic link?)"
    return exc.strerror or str(exc)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
