"""One snapshot of the knowledge base for `ragkb status`, the UI's admin page and the API."""

from __future__ import annotations

from typing import Any

from ragkb.config import Settings, config_path
from ragkb.ingest import manifest as mf
from ragkb.llm import backend_report
from ragkb.runtime import Runtime
from ragkb.weights import embedding_choice, embedding_runtime_choice, reranker_choice


def collect_status(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    rows = runtime.manifest.sources()
    last_run = runtime.manifest.last_run()
    summary = (last_run or {}).get("summary") or {}
    embed = embedding_choice(settings)
    rerank = reranker_choice(settings)
    config = config_path()
    return {
        "home": str(settings.home),
        "config_file": str(config) if config else "none (defaults and RAGKB_* variables)",
        "collection": runtime.collection,
        "qdrant": settings.qdrant_url or _embedded(settings),
        "documents": sum(row.status == mf.OK for row in rows),
        "failed_documents": sum(row.status == mf.FAILED for row in rows),
        "chunks": runtime.store.count(),
        "chunks_in_manifest": runtime.manifest.total_chunks(),
        "embedding_model": embed.reason if embed.available else f"unavailable: {embed.reason}",
        "embedding_runtime": _runtime(settings),
        "reranker": rerank.reason,
        "llm": backend_report(settings),
        "last_run": last_run,
        "failed": [{"path": row.path, "error": row.error} for row in rows if row.status == mf.FAILED],
        "skipped": summary.get("skipped", []) if isinstance(summary.get("skipped"), list) else [],
        "warnings": summary.get("warnings", []),
    }


def _embedded(settings: Settings) -> str:
    if settings.embedded_store == "local":
        return f"embedded (qdrant-client local mode) at {settings.qdrant_path}"
    return f"embedded (Qdrant engine, qdrant-edge) at {settings.home / 'edge'}"


def _runtime(settings: Settings) -> str:
    choice = embedding_runtime_choice(settings)
    where = f"{choice.backend} on {choice.device}" if choice.backend else "unavailable"
    return f"{where}: {choice.reason}"
