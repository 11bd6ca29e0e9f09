"""scan -> diff against the manifest -> parse -> chunk -> embed -> upsert / delete.

Crash safety comes from ordering, not from a transaction spanning SQLite and Qdrant:
1. a doc is journaled `writing` before any of its points are written;
2. points have deterministic ids, so re-writing a doc overwrites instead of duplicating;
3. the doc becomes `ready` in the same SQLite transaction that points its source at it;
4. a doc nobody references, or still `writing`, is deleted from Qdrant by the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import models

from ragkb import acl as acl_rules
from ragkb import manifest as mf
from ragkb.chunk import Chunk, chunk_blocks
from ragkb.config import Settings
from ragkb.models import Embedder, load_embedder
from ragkb.parse import SUPPORTED_SUFFIXES, ParseError, document_type, parse_file
from ragkb.sparse import document_vector
from ragkb.store import DENSE, SPARSE, Store, point_id

log = logging.getLogger(__name__)

# Bump when chunking or payload layout changes: every doc gets a new id and is rebuilt once.
PIPELINE_VERSION = "1"
# Documents are embedded and committed in batches: one encode call over many small files is
# several times faster than one per file, and a commit per file costs fsyncs.
_BATCH_DOCS = 64
_BATCH_CHUNKS = 512


class IngestLocked(RuntimeError):
    """Another ingest run holds the lock on this RAGKB_HOME."""


@dataclass
class FileFailure:
    path: str
    error: str


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    collection: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


FINAL_OUTCOMES = frozenset({"added", "updated", "unchanged", "failed", "deleted"})
ProgressCallback = Callable[[str, str], None]
"""Called as (path, event): once per file with one of FINAL_OUTCOMES, and with stage events
(e.g. "embedding 3120 chunks") before long steps so a huge file visibly makes progress."""


@dataclass(frozen=True)
class _Candidate:
    path: Path
    size: int
    mtime_ns: int
    acl: list[str] | None


@dataclass
class _Work:
    candidate: _Candidate
    sha256: str
    doc_id: str
    previous: mf.SourceRow | None


@contextmanager
def ingest_lock(settings: Settings) -> Iterator[None]:
    """An flock dies with its process, so a SIGKILLed run never leaves a stale lock behind."""
    settings.home.mkdir(parents=True, exist_ok=True)
    handle = open(settings.lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise IngestLocked(f"another ingest is running on {settings.home} (pid {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        embedder: Embedder | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.collection = collection or settings.collection
        self._embedder = embedder
        self._store = store
        self._owns_store = store is None  # a store passed in (the UI's) outlives this run
        self._manifest: mf.Manifest | None = None

    # Opened lazily: a run with nothing to embed should not pay for loading the model.
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings, self.collection)
        return self._store

    @property
    def manifest(self) -> mf.Manifest:
        if self._manifest is None:
            self._manifest = mf.Manifest(self.settings.manifest_path(self.collection))
        return self._manifest

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
        if self._store is not None and self._owns_store:
            self._store.close()

    def pipeline_signature(self) -> str:
        """Part of every doc id: a different model or chunk size must re-embed, not reuse."""
        s = self.settings
        model = str(s.embed_model) if s.embed_model else "packaged-minilm"
        return f"{PIPELINE_VERSION}|{model}|{s.chunk_words}|{s.chunk_overlap_words}"

    # --- the run -----------------------------------------------------------------------------
    def run(self, roots: list[Path], progress: ProgressCallback | None = None, total: Callable[[int], None] | None = None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(collection=self.collection)
        notify = progress or (lambda path, outcome: None)
        with ingest_lock(self.settings):
            run_id = self.manifest.start_run()
            self._recover()
            roots = [root.expanduser().resolve() for root in roots]
            candidates, skipped, missing = self._scan(roots)
            report.skipped = skipped
            report.failed.extend(FileFailure(str(p), "no such file or directory") for p in missing)
            work = self._diff(candidates, report, notify)
            gone = self._vanished(roots, {str(c.path) for c in candidates})
            if total:
                total(len(work) + len(gone))
            for path in gone:
                self._forget_path(path)
                report.deleted += 1
                notify(path, "deleted")
            self._process(work, report, notify)
            self._recover()
            report.seconds = round(time.perf_counter() - started, 3)
            self.manifest.finish_run(run_id, report.to_dict())
        return report

    def forget(self, path: Path) -> int:
        """Remove one file (or every file under a folder) from the base; returns how many."""
        target = str(path.expanduser().resolve())
        with ingest_lock(self.settings):
            paths = [row.path for row in self.manifest.sources() if row.path == target or row.path.startswith(target.rstrip("/") + "/")]
            for source_path in paths:
                self._forget_path(source_path)
            self._recover()
        return len(paths)

    # --- steps -------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Finish what a killed run left: drop partial or orphaned docs, fix stale payloads."""
        for doc_id in self.manifest.stale_docs():
            log.info("removing partial or unreferenced document %s", doc_id)
            self.store.delete_doc(doc_id)
            self.manifest.remove_doc(doc_id)
        for doc_id in self.manifest.dirty_docs():
            self._sync_doc_payload(doc_id)

    def _scan(self, roots: list[Path]) -> tuple[list[_Candidate], int, list[Path]]:
        found: dict[Path, _Candidate] = {}
        skipped = 0
        missing: list[Path] = []
        for root in roots:
            if root.is_file():
                files: list[Path] = [root]
            elif root.is_dir():
                files = sorted(_walk(root))
            else:
                missing.append(root)
                continue
            for path in files:
                if path.suffix.lower() not in SUPPORTED_SUFFIXES and not (path == root):
                    skipped += 1
                    continue
                stat = path.stat()
                found[path] = _Candidate(path, stat.st_size, stat.st_mtime_ns, acl_rules.path_acl(path, self.settings))
        return list(found.values()), skipped, missing

    def _doc_id(self, sha: str, path: Path) -> str:
        """The same bytes parse differently as .txt and .pdf, and a changed pipeline must re-embed."""
        return hashlib.sha256(f"{sha}|{document_type(path)}|{self.pipeline_signature()}".encode()).hexdigest()[:32]

    def _diff(self, candidates: list[_Candidate], report: IngestReport, notify: ProgressCallback) -> list[_Work]:
        work: list[_Work] = []
        for candidate in candidates:
            key = str(candidate.path)
            previous = self.manifest.source(key)
            same_acl = previous is not None and previous.acl == _norm(candidate.acl)
            if (
                previous is not None
                and (previous.size, previous.mtime_ns) == (candidate.size, candidate.mtime_ns)
                and previous.sha256 is not None
                and previous.doc_id == self._doc_id(previous.sha256, candidate.path)
            ):  # same bytes as last time, handled by the same pipeline: no need to hash again
                if previous.status == mf.FAILED:
                    report.failed.append(FileFailure(key, previous.error or "failed"))
                    notify(key, "failed")
                    continue
                if same_acl and self.manifest.doc_state(previous.doc_id) == mf.READY:
                    report.unchanged += 1
                    notify(key, "unchanged")
                    continue
            try:
                sha = sha256_file(candidate.path)
            except OSError as exc:
                report.failed.append(FileFailure(key, f"cannot read file: {exc.strerror or exc}"))
                notify(key, "failed")
                continue
            doc_id = self._doc_id(sha, candidate.path)
            if (
                previous is not None
                and previous.status == mf.OK
                and previous.doc_id == doc_id
                and self.manifest.doc_state(doc_id) == mf.READY
            ):  # touched but identical
                with self.manifest.transaction():
                    self.manifest.touch_source(key, candidate.size, candidate.mtime_ns)
                if same_acl:
                    report.unchanged += 1
                    notify(key, "unchanged")
                    continue
            work.append(_Work(candidate, sha, doc_id, previous))
        return work

    def _vanished(self, roots: list[Path], present: set[str]) -> list[str]:
        prefixes = [str(root) if root.is_file() else str(root).rstrip("/") + "/" for root in roots]
        return [
            row.path
            for row in self.manifest.sources()
            if row.path not in present and any(row.path == p or row.path.startswith(p) for p in prefixes)
        ]

    def _process(self, work: list[_Work], report: IngestReport, notify: ProgressCallback) -> None:
        doc_errors: dict[str, str] = {}
        batch: list[tuple[_Work, list[Chunk] | None]] = []
        for item, parsed in self._parsed(work):
            key = str(item.candidate.path)
            if parsed is None and item.doc_id in doc_errors:  # same bytes as a file that just failed
                parsed = ParseError(doc_errors[item.doc_id])
            if isinstance(parsed, ParseError):
                doc_errors[item.doc_id] = str(parsed)
                self._record_failure(item, str(parsed))
                report.failed.append(FileFailure(key, str(parsed)))
                notify(key, "failed")
                continue
            batch.append((item, parsed))
            if len(batch) >= _BATCH_DOCS or sum(len(c or []) for _, c in batch) >= _BATCH_CHUNKS:
                self._flush(batch, report, notify)
        self._flush(batch, report, notify)

    def _flush(self, batch: list[tuple[_Work, list[Chunk] | None]], report: IngestReport, notify: ProgressCallback) -> None:
        if not batch:
            return
        chunks = sum(len(c or []) for _, c in batch)
        if chunks:
            notify(str(batch[-1][0].candidate.path), f"embedding {chunks} chunks of {len(batch)} file(s)")
        report.chunks += self._write_batch(batch)
        for item, _ in batch:
            outcome = "updated" if item.previous is not None and item.previous.status == mf.OK else "added"
            report.added += outcome == "added"
            report.updated += outcome == "updated"
            notify(str(item.candidate.path), outcome)
        batch.clear()

    def _parsed(self, work: list[_Work]) -> Iterator[tuple[_Work, list[Chunk] | ParseError | None]]:
        """Parse in worker processes when configured, so parsing overlaps embedding."""
        first_of_doc: dict[str, _Work] = {}
        for w in work:
            if self.manifest.doc_state(w.doc_id) != mf.READY:
                first_of_doc.setdefault(w.doc_id, w)
        needs_parse = list(first_of_doc.values())
        reuse = {id(w) for w in work} - {id(w) for w in needs_parse}
        if self.settings.parse_workers <= 1 or len(needs_parse) < 2:
            for item in work:
                yield item, None if id(item) in reuse else _parse_and_chunk(item.candidate.path, self.settings)
            return
        window = self.settings.parse_workers * 2
        with ProcessPoolExecutor(max_workers=self.settings.parse_workers) as pool:
            pending: dict[int, Future[list[Chunk] | ParseError]] = {}
            queue = [w for w in work if id(w) not in reuse]
            submitted = 0
            for item in work:
                while submitted < len(queue) and len(pending) < window:
                    nxt = queue[submitted]
                    pending[id(nxt)] = pool.submit(_parse_and_chunk, nxt.candidate.path, self.settings)
                    submitted += 1
                if id(item) in reuse:
                    yield item, None
                else:
                    yield item, pending.pop(id(item)).result()

    def _write_batch(self, batch: list[tuple[_Work, list[Chunk] | None]]) -> int:
        """Store several documents with one encode call, one upsert and two commits; returns the
        number of chunks embedded. `chunks=None` means the content is already stored (same bytes
        under another name) and only this path is linked to it.

        Crash safety is per batch as it would be per document: every new doc is journaled
        `writing` before the upsert and becomes `ready` in the transaction that records its source.
        """
        fresh = [(item, chunks) for item, chunks in batch if chunks is not None]
        if fresh:
            points = self._points(fresh)
            with self.manifest.transaction():
                for item, chunks in fresh:
                    self.manifest.put_doc(item.doc_id, mf.WRITING, len(chunks or []))
            self.store.upsert(points)
        released: list[str] = []
        with self.manifest.transaction():
            for item, chunks in batch:
                if chunks is not None:  # its points already carry the payload of this one path
                    self.manifest.put_doc(item.doc_id, mf.READY, len(chunks))
                else:
                    self.manifest.mark_payload_dirty(item.doc_id, True)
                self.manifest.put_source(
                    str(item.candidate.path),
                    doc_id=item.doc_id,
                    size=item.candidate.size,
                    mtime_ns=item.candidate.mtime_ns,
                    sha256=item.sha256,
                    acl=item.candidate.acl,
                    status=mf.OK,
                    chunks=len(chunks) if chunks is not None else self.manifest.doc_chunks(item.doc_id),
                )
                old_doc = item.previous.doc_id if item.previous and item.previous.status == mf.OK else None
                if old_doc and old_doc != item.doc_id:
                    self.manifest.mark_payload_dirty(old_doc, True)
                    released.append(old_doc)
        for doc_id in {item.doc_id for item, chunks in batch if chunks is None}:
            self._sync_doc_payload(doc_id)
        for doc_id in released:
            self._release_doc(doc_id)
        return sum(len(chunks or []) for _, chunks in fresh)

    def _points(self, fresh: list[tuple[_Work, list[Chunk] | None]]) -> list[models.PointStruct]:
        texts = [chunk.embedding_text() for _, chunks in fresh for chunk in chunks or []]
        self.store.ensure_collection(self.embedder.dim)
        vectors = self.embedder.encode_documents(texts, batch_size=self.settings.embed_batch_size)
        embedded = iter(zip(texts, vectors))
        points = []
        for item, chunks in fresh:
            doc_payload = self._doc_payload(item.doc_id, extra=(str(item.candidate.path), item.candidate.acl))
            for chunk in chunks or []:
                text, vector = next(embedded)
                indices, values = document_vector(text)
                payload = {
                    "doc_id": item.doc_id,
                    "chunk_index": chunk.index,
                    "text": chunk.text,
                    "page": chunk.page,
                    "section": chunk.section,
                    "kind": chunk.kind,
                    **doc_payload,
                }
                points.append(
                    models.PointStruct(
                        id=point_id(item.doc_id, chunk.index),
                        vector={DENSE: vector.tolist(), SPARSE: models.SparseVector(indices=indices, values=values)},
                        payload=payload,
                    )
                )
        return points

    def _doc_payload(self, doc_id: str, extra: tuple[str, list[str] | None] | None = None) -> dict[str, Any]:
        """Fields shared by all chunks of a doc, derived from every path that holds its content."""
        entries = {row.path: row.acl for row in self.manifest.sources(doc_id) if row.status == mf.OK}
        if extra:
            entries[extra[0]] = extra[1]
        paths = sorted(entries)
        dirs = sorted({str(parent) for p in paths for parent in Path(p).parents})
        return {
            "paths": paths,
            "path_acl": [{"path": p, "acl": entries[p]} for p in paths],
            "acl": acl_rules.doc_acl(list(entries.values())),
            "dirs": dirs,
            "file_type": sorted({document_type(Path(p)) or "other" for p in paths}),
        }

    def _sync_doc_payload(self, doc_id: str) -> None:
        if self.manifest.doc_state(doc_id) == mf.READY and self.manifest.sources(doc_id):
            self.store.set_doc_payload(doc_id, self._doc_payload(doc_id))
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

    def _forget_path(self, path: str) -> None:
        row = self.manifest.source(path)
        with self.manifest.transaction():
            self.manifest.remove_source(path)
            if row and row.doc_id:
                self.manifest.mark_payload_dirty(row.doc_id, True)
        if row and row.doc_id:
            self._release_doc(row.doc_id)

    def _record_failure(self, item: _Work, error: str) -> None:
        key = str(item.candidate.path)
        old_doc = item.previous.doc_id if item.previous and item.previous.status == mf.OK else None
        with self.manifest.transaction():
            self.manifest.put_source(
                key,
                doc_id=item.doc_id,  # with sha256, lets the next run reuse the verdict for the same bytes
                size=item.candidate.size,
                mtime_ns=item.candidate.mtime_ns,
                sha256=item.sha256,
                acl=item.candidate.acl,
                status=mf.FAILED,
                error=error,
            )
        if old_doc:
            self._release_doc(old_doc)

    def ingest_records(
        self,
        records: Iterator[tuple[str, str, str]] | list[tuple[str, str, str]],
        source_prefix: str,
        progress: ProgressCallback | None = None,
        batch_docs: int = 64,
    ) -> IngestReport:
        """Ingest in-memory documents, e.g. a BEIR corpus, as `(id, title, text)` records.

        Each record becomes the source `<source_prefix>/<id>` and goes through the same
        chunk -> embed -> upsert -> manifest steps as a file (`_write_batch`), so a rerun embeds
        only changed records and a killed run is recovered the same way. The title is the section
        of every chunk, so a chunk split off a long text keeps its topic; the text embedded for a
        one-chunk record is BEIR's `title + " " + text`. Records under the prefix that are not
        given any more are removed, like vanished files.
        """
        from ragkb.parse import Block

        started = time.perf_counter()
        report = IngestReport(collection=self.collection)
        notify = progress or (lambda path, outcome: None)
        prefix = source_prefix.rstrip("/")
        seen: set[str] = set()

        with ingest_lock(self.settings):
            run_id = self.manifest.start_run()
            self._recover()
            batch: list[tuple[_Work, list[Chunk] | None]] = []
            pending_docs: set[str] = set()
            for record_id, title, text in records:
                key = f"{prefix}/{record_id}"
                seen.add(key)
                title, text = (title or "").strip(), (text or "").strip()
                body = f"{title} {text}".strip()
                data = body.encode("utf-8")
                sha = hashlib.sha256(data).hexdigest()
                doc_id = hashlib.sha256(f"{sha}|record|{self.pipeline_signature()}".encode()).hexdigest()[:32]
                previous = self.manifest.source(key)
                ready = self.manifest.doc_state(doc_id) == mf.READY
                if ready and previous is not None and previous.status == mf.OK and previous.doc_id == doc_id:
                    report.unchanged += 1
                    notify(key, "unchanged")
                    continue
                item = _Work(_Candidate(Path(key), len(data), 0, None), sha, doc_id, previous)
                if not body:
                    self._record_failure(item, "no text could be extracted")
                    report.failed.append(FileFailure(key, "no text could be extracted"))
                    notify(key, "failed")
                    continue
                chunks: list[Chunk] | None = None
                if not ready and doc_id not in pending_docs:  # same text twice: embed once, as for files
                    block = Block(body, None, title or None, "text")
                    chunks = chunk_blocks([block], self.settings.chunk_words, self.settings.chunk_overlap_words)
                    pending_docs.add(doc_id)
                batch.append((item, chunks))
                if len(batch) >= batch_docs:
                    self._flush(batch, report, notify)
            self._flush(batch, report, notify)
            for row in self.manifest.sources():
                if row.path.startswith(prefix + "/") and row.path not in seen:
                    self._forget_path(row.path)
                    report.deleted += 1
                    notify(row.path, "deleted")
            self._recover()
            report.seconds = round(time.perf_counter() - started, 3)
            self.manifest.finish_run(run_id, report.to_dict())
        return report


def _parse_and_chunk(path: Path, settings: Settings) -> list[Chunk] | ParseError:
    """Runs in a worker process too, so failures come back as values, not exceptions."""
    try:
        blocks = parse_file(path, settings)
    except ParseError as exc:
        return exc
    except MemoryError:
        return ParseError("out of memory while parsing (file too complex)")
    except Exception as exc:  # a parser bug on one file must not stop the run
        log.exception("unexpected parser failure on %s", path)
        return ParseError(f"parser failure: {type(exc).__name__}: {str(exc)[:300]}")
    chunks = chunk_blocks(blocks, settings.chunk_words, settings.chunk_overlap_words)
    if not chunks:
        return ParseError("no text could be extracted")
    return chunks


def _walk(root: Path) -> Iterator[Path]:
    """Files under root, skipping hidden files and folders (VCS data, editor swap files)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and not name.endswith(acl_rules.SIDECAR_SUFFIX):
                yield Path(dirpath) / name


def _norm(acl: list[str] | None) -> list[str] | None:
    return None if acl is None else sorted(acl)
