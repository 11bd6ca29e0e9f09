"""The crash-safety protocol: the only code that writes the manifest and the store together.

There is no transaction spanning SQLite and Qdrant; safety comes from ordering:
1. a doc is journaled `writing` before any of its points are written;
2. points have deterministic ids, so re-writing a doc overwrites instead of duplicating;
3. the doc becomes `ready` in the same SQLite transaction that points its source at it;
4. `recover()` (at the start and end of every run) deletes from the store every doc that is
   still `writing` or that no source references, and rewrites payloads marked dirty.
A SIGKILL at any point therefore leaves at worst points the next `recover()` removes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ragkb.chunk import Chunk
from ragkb.ingest import manifest as mf
from ragkb.ingest.plan import Work
from ragkb.sparse import document_vector
from ragkb.store import NewPoint, Store
from ragkb.store import schema

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]


class Writer:
    def __init__(self, manifest: mf.Manifest, store: Store, embed: Embed, dim: Callable[[], int]) -> None:
        self.manifest = manifest
        self.store = store
        self._embed = embed
        self._dim = dim

    def recover(self) -> None:
        """Finish what a killed run left: drop partial or orphaned docs, fix stale payloads."""
        for doc_id in self.manifest.stale_docs():
            log.info("removing partial or unreferenced document %s", doc_id)
            self.store.delete_doc(doc_id)
            with self.manifest.transaction():
                self.manifest.remove_doc(doc_id)
        for doc_id in self.manifest.dirty_docs():
            self._sync_doc_payload(doc_id)

    def write_batch(self, batch: list[tuple[Work, list[Chunk] | None]]) -> int:
        """Store several documents with one encode call, one upsert and two commits; returns the
        number of chunks embedded. `chunks=None` means the content is already stored (same bytes
        under another name) and only this path is linked to it."""
        fresh = [(item, chunks) for item, chunks in batch if chunks is not None]
        if fresh:
            points = self._points(fresh)
            with self.manifest.transaction():
                for item, chunks in fresh:
                    self.manifest.put_doc(item.doc_id, mf.WRITING, len(chunks or []), item.candidate.doc_type)
            self.store.upsert(points)
        released: list[str] = []
        with self.manifest.transaction():
            for item, chunks in batch:
                if chunks is not None:  # its points already carry the payload of this one path
                    self.manifest.put_doc(item.doc_id, mf.READY, len(chunks), item.candidate.doc_type)
                else:
                    self.manifest.mark_payload_dirty(item.doc_id, True)
                self._put_source(item, mf.OK, chunks=len(chunks) if chunks is not None else self.manifest.doc_chunks(item.doc_id))
                old_doc = _previous_doc(item)
                if old_doc and old_doc != item.doc_id:
                    self.manifest.mark_payload_dirty(old_doc, True)
                    released.append(old_doc)
        for doc_id in {item.doc_id for item, chunks in batch if chunks is None}:
            self._sync_doc_payload(doc_id)
        for doc_id in released:
            self._release_doc(doc_id)
        return sum(len(chunks or []) for _, chunks in fresh)

    def record_failure(self, item: Work, error: str) -> None:
        """The failure is kept with the file's hash, so the same bytes are not parsed again;
        what the file held before leaves the base."""
        with self.manifest.transaction():
            self._put_source(item, mf.FAILED, error=error)
        old_doc = _previous_doc(item)
        if old_doc:
            self._release_doc(old_doc)

    def withdraw(self, path: str, error: str) -> None:
        """A file that can no longer be read safely (its ACL sidecar is unreadable, it became a
        broken link): its content leaves the base, and the failure is on record."""
        row = self.manifest.source(path)
        if row is None:
            return
        with self.manifest.transaction():
            self.manifest.put_source(
                path, doc_id=None, size=row.size, mtime_ns=row.mtime_ns, sha256=None, acl=row.acl, status=mf.FAILED, error=error
            )
            if row.doc_id:
                self.manifest.mark_payload_dirty(row.doc_id, True)
        if row.doc_id:
            self._release_doc(row.doc_id)

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        with self.manifest.transaction():
            self.manifest.touch_source(path, size, mtime_ns)

    def forget_path(self, path: str) -> None:
        row = self.manifest.source(path)
        with self.manifest.transaction():
            self.manifest.remove_source(path)
            if row and row.doc_id:
                self.manifest.mark_payload_dirty(row.doc_id, True)
        if row and row.doc_id:
            self._release_doc(row.doc_id)

    # --- internals ---------------------------------------------------------------------------
    def _put_source(self, item: Work, status: str, chunks: int = 0, error: str | None = None) -> None:
        c = item.candidate
        self.manifest.put_source(
            str(c.path), doc_id=item.doc_id, size=c.size, mtime_ns=c.mtime_ns, sha256=item.sha256,
            acl=c.acl, status=status, error=error, chunks=chunks,
        )  # fmt: skip

    def _points(self, fresh: list[tuple[Work, list[Chunk] | None]]) -> list[NewPoint]:
        texts = [chunk.embedding_text() for _, chunks in fresh for chunk in chunks or []]
        self.store.ensure_collection(self._dim())
        vectors = self._embed(texts)
        embedded = iter(zip(texts, vectors))
        points = []
        for item, chunks in fresh:
            c = item.candidate
            shared = self._doc_payload(item.doc_id, c.doc_type, extra=schema.Location(str(c.path), c.acl))
            for chunk in chunks or []:
                text, vector = next(embedded)
                payload = schema.chunk_payload(item.doc_id, chunk.index, chunk.text, chunk.page, chunk.section, chunk.kind, shared, chunk.ocr,
                                               chunk.page_label)  # fmt: skip
                points.append(NewPoint(schema.point_id(item.doc_id, chunk.index), vector.tolist(), document_vector(text), payload))
        return points

    def _doc_payload(self, doc_id: str, doc_type: str, extra: schema.Location | None = None) -> dict:
        """Fields shared by all chunks of a doc, derived from every path that holds its content
        (a doc has one type: the type is part of its id)."""
        rows = [row for row in self.manifest.sources(doc_id) if row.status == mf.OK and (extra is None or row.path != extra.path)]
        locations = [schema.Location(row.path, row.acl) for row in rows] + ([extra] if extra else [])
        return schema.doc_payload(locations, doc_type)

    def _sync_doc_payload(self, doc_id: str) -> None:
        if self.manifest.doc_state(doc_id) == mf.READY and self.manifest.sources(doc_id):
            self.store.set_doc_payload(doc_id, self._doc_payload(doc_id, self.manifest.doc_type(doc_id) or "other"))
        with self.manifest.transaction():
            self.manifest.mark_payload_dirty(doc_id, False)

    def _release_doc(self, doc_id: str) -> None:
        """Delete a doc's points once no source references it."""
        if any(row.status == mf.OK for row in self.manifest.sources(doc_id)):
            self._sync_doc_payload(doc_id)
            return
        self.store.delete_doc(doc_id)
        with self.manifest.transaction():
            self.manifest.remove_doc(doc_id)


def _previous_doc(item: Work) -> str | None:
    return item.previous.doc_id if item.previous and item.previous.status == mf.OK else None

