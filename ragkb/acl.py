"""Document ACLs: which groups may read a file, and the Qdrant filter that enforces it.

The filter is built here and passed into every Qdrant query (including each prefetch), so
ranking only ever sees chunks the user may read; nothing is filtered after retrieval.
"""

from __future__ import annotations

from pathlib import Path

from qdrant_client import models

from ragkb.config import Settings

# Stored in a chunk's `acl` when none of its files carries an ACL; whether such chunks are
# readable is decided at query time by `acl_default`, so changing the policy needs no re-ingest.
UNRESTRICTED = "__unrestricted__"
SIDECAR_SUFFIX = ".acl"
NOBODY = "__nobody__"
# Group names starting with this are ragkb's own markers: a user can never hold one.
RESERVED_PREFIX = "__"
_UNMATCHABLE = "__no_group__"


def path_acl(path: Path, settings: Settings) -> list[str] | None:
    """Groups for one file: its sidecar `<file>.acl` wins, else the closest configured folder."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8", errors="replace")
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        groups = sorted({g.strip() for line in lines for g in line.split(",") if g.strip()})
        return groups or [NOBODY]  # an ACL file naming no group locks the document away
    best: tuple[int, list[str]] | None = None
    for source in settings.sources:
        root = source.path.expanduser().resolve()
        if source.groups and path.is_relative_to(root) and (best is None or len(root.parts) > best[0]):
            best = (len(root.parts), sorted(set(source.groups)))
    return best[1] if best else None


def doc_acl(path_acls: list[list[str] | None]) -> list[str]:
    """One content may sit at several paths: readable by anyone allowed to read any of them."""
    groups: set[str] = set()
    for acl in path_acls:
        groups.update(acl if acl else [UNRESTRICTED])
    return sorted(groups)


def acl_filter(groups: list[str] | None, settings: Settings) -> models.Filter | None:
    """None means no restriction (single-user mode: no users configured and no --user given)."""
    if groups is None:
        return None
    allowed = {g for g in groups if not g.startswith(RESERVED_PREFIX)}
    if settings.acl_default == "public":
        allowed.add(UNRESTRICTED)
    return models.Filter(must=[models.FieldCondition(key="acl", match=models.MatchAny(any=sorted(allowed) or [_UNMATCHABLE]))])


def may_read(groups: list[str] | None, acl: list[str] | None, settings: Settings) -> bool:
    """The same rule as `acl_filter`, for picking which of a document's paths a user may see."""
    if groups is None:
        return True
    groups = [g for g in groups if not g.startswith(RESERVED_PREFIX)]
    if not acl:
        return settings.acl_default == "public"
    return bool(set(groups) & set(acl))
