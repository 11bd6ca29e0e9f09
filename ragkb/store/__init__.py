"""The vector store: the point schema (`schema`) and one interface over two backends, chosen in
`open_store`:

* embedded (default): Qdrant's own engine in-process through qdrant-edge (`edge.EdgeStore`),
  one shard per collection under RAGKB_HOME/edge/;
* a Qdrant server by URL (`RAGKB_QDRANT_URL`), through qdrant-client (`qdrant.QdrantStore`),
  which also offers qdrant-client's local mode (`RAGKB_EMBEDDED_STORE=local`).

An embedded store can be open in one process only (a second process opening a shard breaks the
first one's next flush), so ragkb takes its own lock, RAGKB_HOME/store.lock, before the store
is opened, waits for it a bounded time, and then says the base is busy (exit 75).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from qdrant_client import models

from ragkb.config import Settings
from ragkb.errors import StoreError
from ragkb.locks import HomeLock
from ragkb.store.optimizer import Optimized
from ragkb.store.qdrant import Hit, NewPoint, QdrantStore
from ragkb.store.schema import SearchMode

__all__ = ["Hit", "NewPoint", "Optimized", "Store", "StoreError", "open_store"]


class Store(Protocol):
    """What ingest and retrieval need of a collection, whichever backend holds it."""

    settings: Settings
    collection: str

    def exists(self) -> bool: ...
    def ensure_collection(self, dim: int) -> None: ...
    def drop(self) -> None: ...
    def upsert(self, points: Sequence[NewPoint]) -> None: ...
    def delete_doc(self, doc_id: str) -> None: ...
    def set_doc_payload(self, doc_id: str, payload: dict[str, Any]) -> None: ...
    def count(self, query_filter: models.Filter | None = None) -> int: ...
    def scroll(self, query_filter: models.Filter | None = None, fields: Iterable[str] | bool = True) -> Iterator[Hit]: ...
    def search(
        self,
        dense: Sequence[float] | None,
        sparse: tuple[list[int], list[float]] | None,
        limit: int,
        query_filter: models.Filter | None = None,
        mode: SearchMode = "hybrid",
        with_payload: bool = True,
    ) -> list[Hit]: ...
    def optimize(self) -> bool: ...
    def optimize_in_background(self, should_stop: Callable[[], bool] | None = None) -> Optimized: ...
    def close(self) -> None: ...


class _Locked:
    """An embedded store and the home lock it was opened under, released when it closes."""

    def __init__(self, store: Any, lock: HomeLock) -> None:
        self._store = store
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        try:
            self._store.close()
        finally:
            self._lock.release()


def open_store(settings: Settings, collection: str | None = None, wait_s: float | None = None) -> Store:
    """The collection's store. `wait_s` bounds how long opening an embedded store waits for
    another process that holds it (a writer waits long, a reader briefly)."""
    name = collection or settings.collection
    if settings.qdrant_url:
        return QdrantStore(settings, name)
    lock = HomeLock(settings.home / "store.lock", "the embedded store")
    lock.acquire(settings.store_read_wait_s if wait_s is None else wait_s)
    try:
        if settings.embedded_store == "local":
            store: Any = QdrantStore(settings, name)
        else:
            from ragkb.store.edge import EdgeStore
            from ragkb.store.migrate import migrate_local_collection

            migrate_local_collection(settings, name)  # a base written by qdrant-client's local mode, once
            store = EdgeStore(settings, name)
    except BaseException:
        lock.release()
        raise
    return _Locked(store, lock)  # type: ignore[return-value]
