"""What the `ragkb` commands do, through the running service of the same RAGKB_HOME when there
is one (it owns the store; opening it here would have to wait for it), in-process otherwise.
Same results, same errors, so output and exit codes do not depend on which path was taken."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragkb.config import Settings
from ragkb.ingest import FileFailure, IngestReport, ProgressCallback, Skipped
from ragkb.runtime import Runtime

TotalCallback = Callable[[int], None]


def _client(settings: Settings, user: str | None = None) -> Any:
    """A client of this home's live service, or None. Only the configured collection is served."""
    from ragkb.service import discovery

    info = discovery.running(settings)
    if info is None:
        return None
    from ragkb.client import ServiceClient

    return ServiceClient(info.url, info.token, user=user, channel="cli")


def _service_collection(settings: Settings, collection: str | None) -> bool:
    return collection is None or collection == settings.collection


def ingest(settings: Settings, roots: list[Path], collection: str | None = None,
           progress: ProgressCallback | None = None, total: TotalCallback | None = None) -> IngestReport:  # fmt: skip
    client = _client(settings) if _service_collection(settings, collection) else None
    if client is None:
        from ragkb.ingest import Ingestor

        with Runtime(settings, collection, store_wait_s=settings.store_wait_s) as runtime:
            return Ingestor(runtime).run(roots, progress=progress, total=total)
    seen = {"done": 0, "total": None}

    def on_progress(job: dict[str, Any]) -> None:
        state = job.get("progress") or {}
        if total and state.get("total") is not None and state["total"] != seen["total"]:
            seen["total"] = state["total"]
            total(int(state["total"]))
        for _ in range(int(state.get("done") or 0) - seen["done"]):
            if progress:
                progress(str(state.get("current") or ""), "updated")
        seen["done"] = max(seen["done"], int(state.get("done") or 0))

    try:
        job = client.wait(client.ingest([str(root.expanduser().resolve()) for root in roots]), on_progress)
    finally:
        client.close()
    return report_from_dict(job["summary"])


def report_from_dict(data: dict[str, Any]) -> IngestReport:
    return IngestReport(
        **{k: v for k, v in data.items() if k not in ("failed", "skipped", "warnings")},
        failed=[FileFailure(**f) for f in data.get("failed", [])],
        skipped=[Skipped(**s) for s in data.get("skipped", [])],
        warnings=[FileFailure(**w) for w in data.get("warnings", [])],
    )


def forget(settings: Settings, path: Path, collection: str | None = None) -> int:
    client = _client(settings) if _service_collection(settings, collection) else None
    if client is None:
        from ragkb import documents

        with Runtime(settings, collection, store_wait_s=settings.store_wait_s) as runtime:
            return documents.forget(runtime, path)
    try:
        return int(client.forget(str(path.expanduser().resolve())))
    finally:
        client.close()


def status(settings: Settings, collection: str | None = None) -> dict[str, Any]:
    client = _client(settings) if _service_collection(settings, collection) else None
    if client is None:
        from ragkb.status import collect_status

        with Runtime(settings, collection) as runtime:
            return collect_status(runtime)
    try:
        return client.status()  # type: ignore[no-any-return]
    finally:
        client.close()


def ask(
    settings: Settings,
    question: str,
    *,
    user: str | None,
    groups: list[str] | None,
    top_k: int | None = None,
    file_types: tuple[str, ...] = (),
    folder: str | None = None,
    history: list[dict[str, str]] | None = None,
    collection: str | None = None,
    on_token: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The answer as the JSON contract of `ragkb ask --json`; audited with channel `cli`."""
    client = _client(settings, user) if _service_collection(settings, collection) else None
    if client is None:
        from ragkb.answer import Answerer
        from ragkb.retrieve import Filters

        with Runtime(settings, collection) as runtime:
            events = Answerer(runtime).stream(question, groups=groups, top_k=top_k, filters=Filters(file_types, folder), history=history or [])
            result = None
            for event in events:
                if event.kind == "token" and on_token:
                    on_token(event.text)
                elif event.result is not None:
                    result = event.result
            assert result is not None
            runtime.audit_answer(result, user=user, channel="cli")
            return result.to_dict()
    filters = {"file_types": list(file_types), "folder": folder} if file_types or folder else None
    try:
        for name, data in client.ask_stream(question, top_k=top_k, filters=filters, history=history):
            if name == "token" and on_token:
                on_token(data["text"])
            elif name == "done":
                return data  # type: ignore[no-any-return]
    finally:
        client.close()
    raise RuntimeError("the service's answer stream ended without a result")
