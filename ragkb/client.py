"""A client of the ragkb service, for the CLI and the UI: the same calls as the library, over
HTTP, with the service's errors turned back into the same `RagkbError` classes (so exit codes
and messages do not depend on whether a service ran)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ragkb import errors
from ragkb.errors import RagkbError, StoreError

_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=10.0)


def _error_classes() -> dict[str, type[RagkbError]]:
    found: dict[str, type[RagkbError]] = {}
    pending = [RagkbError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.kind, cls)
        pending.extend(cls.__subclasses__())
    return found


_ERRORS = _error_classes()


def raise_for(kind: str, message: str, status: int) -> None:
    cls = _ERRORS.get(kind)
    if cls is None:
        cls = errors.BadInput if 400 <= status < 500 else StoreError
    raise cls(message)


class ServiceClient:
    """`user`: act as this user (only honoured with the local token from service.json)."""

    def __init__(self, url: str, token: str | None, user: str | None = None, channel: str = "cli") -> None:
        headers = {"X-Ragkb-Channel": channel}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if user:
            headers["X-Ragkb-User"] = user
        self.url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(f"the ragkb service at {self.url} did not answer: {exc}") from exc
        _check(response)
        if response.status_code == 204:
            return None
        return response.json() if "json" in response.headers.get("content-type", "") else response.content

    # --- asking ------------------------------------------------------------------------------
    def ask(self, question: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/v1/ask", json=_ask_body(question, **options))  # type: ignore[no-any-return]

    def ask_stream(self, question: str, **options: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: passages, token*, done; an `error` event raises."""
        try:
            with self._http.stream("POST", "/v1/ask", json=_ask_body(question, **options), headers={"Accept": "text/event-stream"}) as response:
                if response.status_code >= 400:
                    response.read()
                    _check(response)
                name = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:].strip())
                        if name == "error":
                            raise_for(data["error"]["type"], data["error"]["message"], 500)
                        yield name, data
        except httpx.HTTPError as exc:
            raise StoreError(f"the ragkb service at {self.url} did not answer: {exc}") from exc

    def search(self, query: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/v1/search", json={"query": query, **{k: v for k, v in options.items() if v is not None}})  # type: ignore[no-any-return]

    # --- documents and ingest ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")  # type: ignore[no-any-return]

    def documents(self, status: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/documents", params={"status": status} if status else None)["documents"]  # type: ignore[no-any-return]

    def upload(self, files: list[tuple[str, bytes]], groups: list[str] | None = None) -> dict[str, Any]:
        parts = [("files", (name, data)) for name, data in files]
        return self._call("POST", "/v1/documents", files=parts, data={"groups": ",".join(groups or [])})  # type: ignore[no-any-return]

    def delete(self, doc_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/documents/{doc_id}")  # type: ignore[no-any-return]

    def forget(self, path: str) -> int:
        return int(self._call("POST", "/v1/forget", json={"path": path})["removed"])

    def context(self, doc_id: str, chunk_index: int) -> tuple[str, str]:
        data = self._call("GET", f"/v1/documents/{doc_id}/context", params={"chunk_index": chunk_index})
        return data["before"], data["after"]

    def file(self, path: str) -> bytes:
        return self._call("GET", "/v1/file", params={"path": path})  # type: ignore[no-any-return]

    def file_available(self, path: str) -> bool:
        """Whether `file(path)` would give the original (ingested, readable by this caller, still
        on disk), without transferring it: one byte is asked for and the body is not read."""
        try:
            with self._http.stream("GET", "/v1/file", params={"path": path}, headers={"Range": "bytes=0-0"}) as response:
                if response.status_code == 404:
                    return False
                if response.status_code >= 400:
                    response.read()
                    _check(response)
                return True
        except httpx.HTTPError as exc:
            raise StoreError(f"the ragkb service at {self.url} did not answer: {exc}") from exc

    def feedback(self, answer_id: str, rating: int, comment: str | None = None) -> None:
        """Rate an answer this caller was given: 1 (helpful) or -1 (not)."""
        body: dict[str, Any] = {"answer_id": answer_id, "rating": rating}
        if comment:
            body["comment"] = comment
        self._call("POST", "/v1/feedback", json=body)

    def ingest(self, paths: list[str]) -> str:
        return str(self._call("POST", "/v1/ingest", json={"paths": paths or None})["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/ingest/{job_id}")  # type: ignore[no-any-return]

    def wait(self, job_id: str, on_progress: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.5) -> dict[str, Any]:
        """Follow a job to its end; a failed job raises its error."""
        while True:
            job = self.job(job_id)
            if on_progress:
                on_progress(job)
            if job["state"] == "done":
                return job
            if job["state"] == "failed":
                raise RagkbError(job.get("error") or "the ingest job failed")
            time.sleep(poll_s)


def _ask_body(question: str, top_k: int | None = None, filters: dict[str, Any] | None = None, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question}
    if top_k is not None:
        body["top_k"] = top_k
    if filters:
        body["filters"] = filters
    if history:
        body["history"] = history
    return body


def _check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        kind, message = str(error["type"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "http", f"HTTP {response.status_code}: {response.text[:300]}"
    raise_for(kind, message, response.status_code)
