"""An ingest run: scan -> plan -> parse (worker processes) -> embed and write (Writer).

`run()` (files) and `ingest_records()` (in-memory corpora) share one session: the write lock,
a journaled run, recovery before and after, and one report. The crash-safety protocol itself
is `ragkb.ingest.writer`; what changed since the last run is `ragkb.ingest.plan`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ragkb.chunk import Chunk, chunk_blocks
from ragkb.config import Settings
from ragkb.errors import IngestLocked
from ragkb.ingest import manifest as mf
from ragkb.ingest.plan import Work, doc_id_for, make_plan
from ragkb.ingest.scan import Candidate, FileFailure, Skipped, scan
from ragkb.ingest.workers import Chunked, ParsePool
from ragkb.ingest.writer import Writer
from ragkb.locks import HomeLock
from ragkb.parse import Block, ParseError
from ragkb.runtime import Runtime

# Bump when chunking or payload layout changes: every doc gets a new id and is rebuilt once.
# 2: payload `locations` (per-path folders and ACL) replaced `paths`/`dirs`/`path_acl`.
# 3: PDF sections from the outline, printed page labels (`page_label`), no TOC chunks; short
#    elements packed, lead-ins kept with what they introduce; HTML without navigation, TOCs and
#    footers, admonitions in their section, definition terms with their descriptions.
PIPELINE_VERSION = "3"
# Documents are embedded and committed in batches: one encode call over many small files is
# several times faster than one per file, and a commit per file costs fsyncs.
_BATCH_DOCS = 64
_BATCH_CHUNKS = 512

FINAL_OUTCOMES = frozenset({"added", "updated", "unchanged", "failed", "deleted", "skipped"})
ProgressCallback = Callable[[str, str], None]
"""Called as (path, event): once per file with one of FINAL_OUTCOMES, and with stage events
(e.g. "embedding 3120 chunks") before long steps so a huge file visibly makes progress."""


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    # Ingested, but worth a look (e.g. a page whose OCR confidence is low): path + warning.
    warnings: list[FileFailure] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    collection: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def ingest_lock(settings: Settings) -> HomeLock:
    """One writer run per RAGKB_HOME; a second one is told at once (exit 75: retry later)."""
    lock = HomeLock(settings.lock_path, "ingest", error=IngestLocked)
    lock.acquire(0)
    return lock


class Ingestor:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.collection = runtime.collection

    @property
    def manifest(self) -> mf.Manifest:
        return self.runtime.manifest

    @property
    def store(self) -> Any:
        return self.runtime.store

    @cached_property
    def writer(self) -> Writer:
        embedder = lambda: self.runtime.embedder  # noqa: E731 - loaded only if something is embedded
        return Writer(
            self.manifest,
            self.store,
            embed=lambda texts: embedder().encode_documents(texts, batch_size=self.settings.embed_batch_size),
            dim=lambda: embedder().dim,
        )

    def pipeline_signature(self) -> str:
        """Part of every doc id: a different model or chunk size must re-embed, not reuse."""
        s = self.settings
        model = str(s.embed_model) if s.embed_model else "packaged-minilm"
        return f"{PIPELINE_VERSION}|{model}|{s.chunk_words}|{s.chunk_overlap_words}"

    @contextmanager
    def _session(self) -> Iterator[IngestReport]:
        started = time.perf_counter()
        report = IngestReport(collection=self.collection)
        with ingest_lock(self.settings):
            run_id = self.manifest.start_run()
            self.writer.recover()
            yield report
            self.writer.recover()
            report.seconds = round(time.perf_counter() - started, 3)
            self.manifest.finish_run(run_id, report.to_dict())

    # --- files -------------------------------------------------------------------------------
    def run(self, roots: list[Path], progress: ProgressCallback | None = None, total: Callable[[int], None] | None = None) -> IngestReport:
        notify = progress or (lambda path, outcome: None)
        with self._session() as report:
            roots = [root.expanduser().resolve() for root in roots]
            scanned = scan(roots, self.settings)
            plan = make_plan(scanned, roots, self.manifest, self.pipeline_signature())
            for skipped in scanned.skipped:
                report.skipped.append(skipped)
                notify(skipped.path, "skipped")
            for failure in scanned.failed_closed:
                self.writer.withdraw(failure.path, failure.error)
            for failure in scanned.failed + plan.failed + plan.unreadable:
                report.failed.append(failure)
                notify(failure.path, "failed")
            for candidate in plan.touched:
                self.writer.touch(str(candidate.path), candidate.size, candidate.mtime_ns)
            for key in plan.unchanged:
                report.unchanged += 1
                notify(key, "unchanged")
            if total:  # what remains is the slow part the progress bar measures
                total(len(plan.work) + len(plan.gone))
            # New paths first: a renamed file links to the content its old name still holds,
            # which is released only afterwards, so a rename never re-embeds.
            self._process(plan.work, report, notify)
            for path in plan.gone:
                self.writer.forget_path(path)
                report.deleted += 1
                notify(path, "deleted")
        return report

    def forget(self, path: Path) -> int:
        """Remove one file (or every file under a folder) from the base; returns how many."""
        target = str(path.expanduser().resolve())
        with ingest_lock(self.settings):
            paths = [row.path for row in self.manifest.sources() if row.path == target or row.path.startswith(target.rstrip("/") + "/")]
            for source_path in paths:
                self.writer.forget_path(source_path)
            self.writer.recover()
        return len(paths)

    def _process(self, work: list[Work], report: IngestReport, notify: ProgressCallback) -> None:
        doc_errors: dict[str, str] = {}
        batch: list[tuple[Work, list[Chunk] | None]] = []
        for item, parsed in self._parsed(work):
            key = str(item.candidate.path)
            if parsed is None and item.doc_id in doc_errors:  # same bytes as a file that just failed
                parsed = ParseError(doc_errors[item.doc_id])
            if isinstance(parsed, ParseError):
                doc_errors[item.doc_id] = str(parsed)
                self.writer.record_failure(item, str(parsed))
                report.failed.append(FileFailure(key, str(parsed)))
                notify(key, "failed")
                continue
            if parsed is not None:
                report.warnings.extend(FileFailure(key, warning) for warning in parsed.warnings)
            batch.append((item, parsed.chunks if parsed is not None else None))
            if len(batch) >= _BATCH_DOCS or sum(len(c or []) for _, c in batch) >= _BATCH_CHUNKS:
                self._flush(batch, report, notify)
        self._flush(batch, report, notify)

    def _parsed(self, work: list[Work]) -> Iterator[tuple[Work, Chunked | ParseError | None]]:
        """Each distinct content is parsed once, in worker processes (`ParsePool`), while this
        process embeds; `None` means "already stored or parsed under another name"."""
        first_of_doc: dict[str, Work] = {}
        for w in work:
            if self.manifest.doc_state(w.doc_id) != mf.READY:
                first_of_doc.setdefault(w.doc_id, w)
        to_parse = list(first_of_doc.values())
        if not to_parse:
            for item in work:
                yield item, None
            return
        with ParsePool(self.settings, self.settings.parse_workers) as pool:
            parsed = pool.results(w.candidate.path for w in to_parse)
            wanted = {id(w) for w in to_parse}
            for item in work:
                yield item, next(parsed) if id(item) in wanted else None

    def _flush(self, batch: list[tuple[Work, list[Chunk] | None]], report: IngestReport, notify: ProgressCallback) -> None:
        if not batch:
            return
        chunks = sum(len(c or []) for _, c in batch)
        if chunks:
            notify(str(batch[-1][0].candidate.path), f"embedding {chunks} chunks of {len(batch)} file(s)")
        report.chunks += self.writer.write_batch(batch)
        for item, _ in batch:
            outcome = "updated" if item.previous is not None and item.previous.status == mf.OK else "added"
            report.added += outcome == "added"
            report.updated += outcome == "updated"
            notify(str(item.candidate.path), outcome)
        batch.clear()

    # --- records -----------------------------------------------------------------------------
    def ingest_records(
        self,
        records: Iterable[tuple[str, str, str]],
        source_prefix: str,
        progress: ProgressCallback | None = None,
        batch_docs: int = _BATCH_DOCS,
    ) -> IngestReport:
        """Ingest in-memory documents, e.g. a BEIR corpus, as `(id, title, text)` records.

        Each record becomes the source `<source_prefix>/<id>` and goes through the same
        chunk -> embed -> write steps as a file, so a rerun embeds only changed records and a
        killed run is recovered the same way. The title is the section of every chunk, so a
        chunk split off a long text keeps its topic; the text embedded for a one-chunk record
        is BEIR's `title + " " + text`. Records under the prefix that are not given any more
        are removed, like vanished files.
        """
        notify = progress or (lambda path, outcome: None)
        prefix = source_prefix.rstrip("/")
        seen: set[str] = set()
        with self._session() as report:
            batch: list[tuple[Work, list[Chunk] | None]] = []
            pending_docs: set[str] = set()
            for record_id, title, text in records:
                key = f"{prefix}/{record_id}"
                seen.add(key)
                title, text = (title or "").strip(), (text or "").strip()
                body = f"{title} {text}".strip()
                data = body.encode("utf-8")
                sha = hashlib.sha256(data).hexdigest()
                doc_id = doc_id_for(sha, "record", self.pipeline_signature())
                previous = self.manifest.source(key)
                ready = self.manifest.doc_state(doc_id) == mf.READY
                if ready and previous is not None and previous.status == mf.OK and previous.doc_id == doc_id:
                    report.unchanged += 1
                    notify(key, "unchanged")
                    continue
                item = Work(Candidate(Path(key), len(data), 0, None, "text"), sha, doc_id, previous)
                if not body:
                    self.writer.record_failure(item, "no text could be extracted")
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
                    self.writer.forget_path(row.path)
                    report.deleted += 1
                    notify(row.path, "deleted")
        return report
