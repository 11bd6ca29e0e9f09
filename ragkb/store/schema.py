"""The stored chunk: its payload keys, its point id, the filters over it, and the typed record a
search returns. Every module that writes or reads a point goes through this one; no payload
key is spelled anywhere else.

A point is one chunk of one *content* (doc_id = hash of the bytes + type + pipeline). The same
content may sit at several paths with different ACLs, so the payload carries one `locations`
entry per path (path, its folders, its ACL) and, for the ACL filter, the union `acl`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qdrant_client import models

from ragkb import acl as acl_rules
from ragkb.config import Settings

DENSE = "dense"
SPARSE = "sparse"
SearchMode = Literal["hybrid", "dense", "sparse"]

# Payload keys.
DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"
TEXT = "text"
PAGE = "page"
SECTION = "section"
KIND = "kind"
OCR = "ocr"  # the text was recognised from an image (a scan): citations say so
PAGE_LABEL = "page_label"  # the number printed on a PDF page ("iii", "12"); PAGE stays the physical page
ACL = "acl"  # union of the locations' ACLs: what the access filter matches
LOCATIONS = "locations"  # [{path, dirs, acl}] one per path holding this content
FILE_TYPE = "file_type"  # [type]: a list so facet filters match with MatchAny
# Keys inside a location entry.
LOC_PATH = "path"
LOC_DIRS = "dirs"
LOC_ACL = "acl"

# Keys that queries filter on: a server (and qdrant-edge) index them.
INDEXED_KEYWORDS = (DOC_ID, ACL, FILE_TYPE, f"{LOCATIONS}[].{LOC_DIRS}", f"{LOCATIONS}[].{LOC_ACL}")
DOC_PAYLOAD_KEYS = (ACL, LOCATIONS, FILE_TYPE)

_POINT_NAMESPACE = uuid.UUID("6f1c3a52-2f0e-4c59-9a55-0c7c5d0a9b11")


def point_id(doc_id: str, chunk_index: int) -> str:
    """Deterministic ids make a re-run after a crash overwrite, never duplicate."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{doc_id}:{chunk_index}"))


@dataclass(frozen=True)
class Location:
    """One path that holds a document's content, with the groups that may read it there."""

    path: str
    acl: list[str] | None  # None: no ACL configured for this path

    def to_payload(self) -> dict[str, Any]:
        dirs = sorted({str(parent) for parent in Path(self.path).parents})
        return {LOC_PATH: self.path, LOC_DIRS: dirs, LOC_ACL: acl_rules.doc_acl([self.acl])}


def doc_payload(locations: list[Location], doc_type: str) -> dict[str, Any]:
    """Fields shared by every chunk of a doc, rewritten when a path is added or removed."""
    ordered = sorted(locations, key=lambda loc: loc.path)
    return {
        ACL: acl_rules.doc_acl([loc.acl for loc in ordered]),
        LOCATIONS: [loc.to_payload() for loc in ordered],
        FILE_TYPE: [doc_type],
    }


def chunk_payload(
    doc_id: str, index: int, text: str, page: int | None, section: str | None, kind: str, shared: dict[str, Any], ocr: bool = False,
    page_label: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {DOC_ID: doc_id, CHUNK_INDEX: index, TEXT: text, PAGE: page, PAGE_LABEL: page_label, SECTION: section, KIND: kind,
            OCR: ocr, **shared}  # fmt: skip


@dataclass
class Passage:
    """A stored chunk as a search returns it, with the one path this reader is shown."""

    id: str
    doc_id: str
    chunk_index: int
    source: str
    page: int | None
    section: str | None
    text: str
    score: float
    kind: str
    file_type: str | None
    ocr: bool = False
    # Cosine between the question and this passage under the embedding model: unlike `score`
    # (fused, normalised per query) it is comparable across questions, so it can say "no
    # passage is about this" (Settings.min_relevance). None where no dense search ran.
    relevance: float | None = None
    page_label: str | None = None  # printed page label where the PDF has them; `page` is the physical page


def passage(
    point_id_: str,
    score: float,
    payload: dict[str, Any],
    groups: list[str] | None,
    settings: Settings,
    relevance: float | None = None,
) -> Passage:
    """Typed view of a point's payload; `source` is a path this reader may read."""
    return Passage(
        id=point_id_,
        doc_id=payload.get(DOC_ID, ""),
        chunk_index=int(payload.get(CHUNK_INDEX, 0)),
        source=visible_path(payload, groups, settings),
        page=payload.get(PAGE),
        section=payload.get(SECTION),
        text=payload.get(TEXT, ""),
        score=float(score),
        kind=payload.get(KIND, "text"),
        file_type=(payload.get(FILE_TYPE) or [None])[0],
        ocr=bool(payload.get(OCR, False)),
        page_label=payload.get(PAGE_LABEL),
        relevance=None if relevance is None else round(relevance, 4),
    )


def paths(payload: dict[str, Any]) -> list[str]:
    return [loc[LOC_PATH] for loc in payload.get(LOCATIONS) or []]


def visible_path(payload: dict[str, Any], groups: list[str] | None, settings: Settings) -> str:
    """Identical content may sit in folders with different ACLs; cite one this user may read."""
    entries = payload.get(LOCATIONS) or []
    for entry in entries:
        if acl_rules.may_read_stored(groups, entry.get(LOC_ACL), settings):
            return str(entry[LOC_PATH])
    return ""


# --- filters -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """Facets a user narrows a question to; combined with the ACL inside the Qdrant query."""

    file_types: tuple[str, ...] = ()
    folder: str | None = None


def among(query_filter: models.Filter | None, ids: Sequence[str]) -> models.Filter:
    """`query_filter` (the reader's ACL and facets) and one of these point ids: a read by id
    that still checks the ACL inside the engine."""
    must: list[Any] = [models.HasIdCondition(has_id=list(ids))]
    return models.Filter(must=must + ([query_filter] if query_filter is not None else []))


def doc_filter(doc_id: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=DOC_ID, match=models.MatchValue(value=doc_id))])


def build_filter(groups: list[str] | None, filters: Filters | None, settings: Settings) -> models.Filter | None:
    """The reader's ACL and facets as one filter that goes inside every (pre)fetch.

    The folder facet matches a *location* that is both under the folder and readable by the
    reader, so a folder filter never reveals that a readable document also sits in a folder the
    reader cannot see.
    """
    conditions: list[models.Condition] = []
    allowed = acl_rules.allowed_values(groups, settings)
    if allowed is not None:
        conditions.append(models.FieldCondition(key=ACL, match=models.MatchAny(any=allowed)))
    if filters and filters.file_types:
        conditions.append(models.FieldCondition(key=FILE_TYPE, match=models.MatchAny(any=list(filters.file_types))))
    if filters and filters.folder:
        folder = str(Path(filters.folder).expanduser().resolve())
        inside: list[models.Condition] = [models.FieldCondition(key=LOC_DIRS, match=models.MatchValue(value=folder))]
        if allowed is not None:
            inside.append(models.FieldCondition(key=LOC_ACL, match=models.MatchAny(any=allowed)))
        conditions.append(models.NestedCondition(nested=models.Nested(key=LOCATIONS, filter=models.Filter(must=inside))))
    return models.Filter(must=conditions) if conditions else None


def search_mode(dense: Sequence[float] | None, sparse: tuple[list[int], list[float]] | None, mode: SearchMode) -> SearchMode:
    """The search a backend can run: hybrid needs both vectors, and a stop-word-only question
    has no keywords (an empty sparse vector), so it falls back to the list it has."""
    has_keywords = bool(sparse and sparse[0])
    if mode == "hybrid" and (dense is None or not has_keywords):
        return "sparse" if has_keywords else "dense"
    return mode
