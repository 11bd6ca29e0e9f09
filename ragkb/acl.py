"""Document ACLs: which groups may read a file, and the Qdrant filter that enforces it.

The filter is built here and passed into every Qdrant query (including each prefetch), so
ranking only ever sees chunks the user may read; nothing is filtered after retrieval.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ragkb.config import Settings

# Stored in a chunk's `acl` when none of its files carries an ACL; whether such chunks are
# readable is decided at query time by `acl_default`, so changing the policy needs no re-ingest.
UNRESTRICTED = "__unrestricted__"
SIDECAR_SUFFIX = ".acl"
NOBODY = "__nobody__"
# Group names starting with this are ragkb's own markers: a user can never hold one.
RESERVED_PREFIX = "__"
_UNMATCHABLE = "__no_group__"


class SidecarError(Exception):
    """A sidecar `.acl` exists but cannot be read: the file it guards must fail closed."""


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def path_acl(path: Path, settings: Settings) -> list[str] | None:
    """Groups for one file: its sidecar `<file>.acl` wins, else the closest configured folder.

    A sidecar that exists in any form (dangling link, folder, unreadable) but cannot be read
    raises SidecarError: treating it as absent would make a restricted file public.
    """
    sidecar = sidecar_path(path)
    try:
        info = os.lstat(sidecar)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise SidecarError(f"cannot check ACL sidecar {sidecar.name}: {exc.strerror or exc}") from exc
    if info is not None:
        try:
            if not stat.S_ISREG(os.stat(sidecar).st_mode):
                raise SidecarError(f"ACL sidecar {sidecar.name} is not a regular file")
            text = sidecar.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SidecarError(f"cannot read ACL sidecar {sidecar.name}: {exc.strerror or exc}") from exc
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        groups = sorted({g.strip() for line in lines for g in line.split(",") if g.strip()})
        return groups or [NOBODY]  # an ACL file naming no group locks the document away
    best: tuple[int, list[str]] | None = None
    for source in settings.sources:
        root = source.path.expanduser().resolve()
        if source.groups and path.is_relative_to(root) and (best is None or len(root.parts) > best[0]):
            best = (len(root.parts), sorted(set(source.groups)))
    return best[1] if best else None


def write_sidecar(path: Path, groups: list[str] | None) -> None:
    """Restrict `path` to `groups` (None or empty: remove the sidecar, so folder rules apply)."""
    sidecar = sidecar_path(path)
    if groups:
        sidecar.write_text(",".join(sorted(set(groups))) + "\n", encoding="utf-8")
    elif sidecar.exists():
        sidecar.unlink()


def parse_groups(text: str) -> list[str]:
    """Groups typed by a person: separated by commas or white space."""
    return sorted({g.strip() for g in re.split(r"[,\s]+", text) if g.strip()})


def doc_acl(path_acls: list[list[str] | None]) -> list[str]:
    """One content may sit at several paths: readable by anyone allowed to read any of them."""
    groups: set[str] = set()
    for acl in path_acls:
        groups.update(acl if acl else [UNRESTRICTED])
    return sorted(groups)


def allowed_values(groups: list[str] | None, settings: Settings) -> list[str] | None:
    """The stored `acl` values a reader may match; None means no restriction (single-user mode:
    no users configured and no --user given)."""
    if groups is None:
        return None
    allowed = {g for g in groups if not g.startswith(RESERVED_PREFIX)}
    if settings.acl_default == "public":
        allowed.add(UNRESTRICTED)
    return sorted(allowed) or [_UNMATCHABLE]


def may_read_stored(groups: list[str] | None, stored_acl: list[str] | None, settings: Settings) -> bool:
    """The same rule as the query filter, applied to one stored location's `acl` list."""
    allowed = allowed_values(groups, settings)
    return allowed is None or bool(set(allowed) & set(stored_acl or [UNRESTRICTED]))


def may_read(groups: list[str] | None, acl: list[str] | None, settings: Settings) -> bool:
    """The same rule, for a manifest row's ACL (None: no ACL configured for that path)."""
    return may_read_stored(groups, doc_acl([acl]), settings)
