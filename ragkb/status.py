"""One snapshot of the knowledge base for `ragkb status` and the UI's admin page."""

from __future__ import annotations

from typing import Any

from ragkb import manifest as mf
from ragkb.config import Settings
from ragkb.llm import backend_report
from ragkb.models import embedding_choice, reranker_choice
from ragkb.store import Store


def collect_status(settings: Settings, store: Store | None = None) -> dict[str, Any]:
    manifest = mf.Manifest(settings.manifest_path())
    try:
        rows = manifest.sources()
        last_run = manifest.last_run()
        chunks_in_manifest = manifest.total_chunks()
    finally:
        manifest.close()
    owned = store is None
    store = store or Store(settings)
    try:
        points = store.count()
    finally:
        if owned:
            store.close()
    embed = embedding_choice(settings)
    rerank = reranker_choice(settings)
    return {
        "home": str(settings.home),
        "collection": settings.collection,
        "qdrant": settings.qdrant_url or f"embedded at {settings.qdrant_path}",
        "documents": sum(row.status == mf.OK for row in rows),
        "failed_documents": sum(row.status == mf.FAILED for row in rows),
        "chunks": points,
        "chunks_in_manifest": chunks_in_manifest,
        "embedding_model": embed.reason if embed.available else f"unavailable: {embed.reason}",
        "reranker": rerank.reason,
        "llm": backend_report(settings),
        "last_run": last_run,
        "failed": [{"path": row.path, "error": row.error} for row in rows if row.status == mf.FAILED],
    }
