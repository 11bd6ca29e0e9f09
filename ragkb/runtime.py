"""Runtime(settings): the components one process uses for one knowledge base, built lazily
and owned in one place (store, embedder, reranker, generator, manifest, audit log).

The CLI builds one per command, the service and the UI one per process; `Ingestor`,
`Retriever` and `Answerer` take a Runtime instead of each opening their own store or model.
Nothing is built until first used, so `ragkb status` never loads a model and an unchanged
ingest never loads the embedder.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ragkb.config import Settings

if TYPE_CHECKING:
    from ragkb.answer import AnswerResult
    from ragkb.ingest.manifest import Manifest
    from ragkb.llm import Generator
    from ragkb.store import Store
    from ragkb.weights import Embedder


class Runtime:
    """`store_wait_s`: how long opening the embedded store waits for another process (a
    writer waits long, a reader briefly). Components may be given ready-made (tests share one
    embedder across many runtimes)."""

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        *,
        store_wait_s: float | None = None,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.settings = settings
        self.collection = collection or settings.collection
        self.store_wait_s = settings.store_read_wait_s if store_wait_s is None else store_wait_s
        self._build = threading.RLock()  # threads (UI sessions, API workers) share one of each
        self._parent: Runtime | None = None
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if generator is not None:
            self.__dict__["generator"] = generator

    def derive(self, settings: Settings | None = None, *, generator: Generator | None = None) -> Runtime:
        """A runtime with other settings (retrieval depth, fusion, LLM backend) that shares this
        one's store, manifest and, when the model settings agree, its models. The embedded
        store can be open once per process, so variants must share it rather than reopen it."""
        child = Runtime(settings or self.settings, self.collection, store_wait_s=self.store_wait_s, generator=generator)
        child._parent = self
        return child

    def _shared(self, name: str, *keys: str) -> Any:
        """The parent's component when this runtime derives from one with the same `keys`."""
        parent = self._parent
        if parent is not None and all(getattr(parent.settings, k) == getattr(self.settings, k) for k in keys):
            return getattr(parent, name)
        return None

    @cached_property
    def store(self) -> Store:
        from ragkb.store import open_store

        shared = self._shared("store")
        if shared is not None:
            return shared
        with self._build:
            return open_store(self.settings, self.collection, wait_s=self.store_wait_s)

    @cached_property
    def embedder(self) -> Embedder:
        from ragkb.weights import load_embedder

        shared = self._shared("embedder", "embed_model", "query_prefix", "embed_backend", "device")
        if shared is not None:
            return shared
        with self._build:
            return load_embedder(self.settings)

    @cached_property
    def reranker(self) -> Any:
        from ragkb.weights import load_reranker

        if self._parent is not None and self._parent.settings.reranker_model == self.settings.reranker_model:
            return self._parent.reranker
        with self._build:
            return load_reranker(self.settings)

    @cached_property
    def generator(self) -> Generator:
        from ragkb.llm import resolve_backend

        with self._build:
            return resolve_backend(self.settings)

    @cached_property
    def manifest(self) -> Manifest:
        from ragkb.ingest.manifest import Manifest

        shared = self._shared("manifest")
        if shared is not None:
            return shared
        with self._build:
            return Manifest(self.settings.manifest_path(self.collection))

    def audit_answer(self, result: AnswerResult, *, user: str | None, channel: str) -> dict[str, Any]:
        from ragkb.audit import audit_answer

        return audit_answer(self.settings, result, user=user, channel=channel)

    def close(self) -> None:
        """Close what was opened (the store releases its lock for other processes); a derived
        runtime leaves what it shares to its parent."""
        if self._parent is not None:
            return
        for name in ("store", "manifest"):
            component = self.__dict__.pop(name, None)
            if component is not None:
                component.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
