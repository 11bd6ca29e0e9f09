"""Any OpenAI-compatible server (llama-server, vLLM, LocalAI): streamed chat completions, and the
probe `auto` uses when RAGKB_OPENAI_URL is set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from ragkb.config import Settings
from ragkb.errors import LLMError
from ragkb.llm.base import PROBE_TIMEOUT_S, GeneratorKind, transport_error


def _error_message(response: httpx.Response) -> str:
    """OpenAI puts it in error.message, vLLM in message; anything else is shown raw."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return json.dumps(body)[:300]


def _headers(settings: Settings) -> dict[str, str]:
    if settings.openai_api_key is None:
        return {}
    return {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}


def _v1(url: str) -> str:
    """OpenAI SDKs take a base URL ending in /v1; accept it with or without."""
    return f"{url.rstrip('/').removesuffix('/v1')}/v1"


class OpenAIGenerator:
    """Chat completions from any OpenAI-compatible server (llama-server, vLLM, LocalAI)."""

    kind: GeneratorKind = "llm"
    instruction_tuned = True
    reason = ""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.openai_url.rstrip("/") if settings.openai_url else None
        self.model = settings.llm_model
        self.name = f"openai:{self.model}@{self.url or 'unset'}"
        self._timeout_s = settings.llm_timeout_s
        self._max_tokens = settings.max_answer_tokens
        self._client = httpx.Client(timeout=settings.llm_timeout_s, headers=_headers(settings))

    @property
    def endpoint(self) -> str:
        return f"{_v1(self.url or '')}/chat/completions"

    def stream(self, system: str, user: str) -> Iterator[str]:
        if self.url is None:
            raise LLMError(
                "backend 'openai' needs a server: set RAGKB_OPENAI_URL (e.g. http://localhost:8080 for llama-server)"
            )
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "stream": True,
            "temperature": 0,
            "max_tokens": self._max_tokens,
        }
        try:
            with self._client.stream("POST", self.endpoint, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response)
                yield from self._sse_text(response)
        except httpx.TransportError as exc:
            raise transport_error(
                "the OpenAI-compatible server", self.url, "RAGKB_OPENAI_URL", self._timeout_s, exc
            ) from None

    def _sse_text(self, response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event: dict[str, Any] = json.loads(data)
            except ValueError:
                raise LLMError(
                    f"the OpenAI-compatible server at {self.url} sent a malformed event: {data[:120]!r}"
                ) from None
            if "error" in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise LLMError(f"the OpenAI-compatible server at {self.url} failed: {message}")
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text

    def _status_error(self, response: httpx.Response) -> LLMError:
        status, message = response.status_code, _error_message(response)
        where = f"the OpenAI-compatible server at {self.url}"
        if status in (401, 403):
            return LLMError(f"{where} refused the request (HTTP {status}: {message}); check RAGKB_OPENAI_API_KEY")
        if status == 404:
            return LLMError(
                f"{where} has no model '{self.model}' or no /v1/chat/completions (HTTP 404: {message}); "
                "check RAGKB_LLM_MODEL and RAGKB_OPENAI_URL"
            )
        return LLMError(f"{where} failed (HTTP {status}): {message}")


def openai_problem(settings: Settings) -> str | None:
    """Why the configured OpenAI-compatible server cannot answer now (GET /v1/models), or None."""
    if not settings.openai_url:
        return "no OpenAI-compatible server configured (RAGKB_OPENAI_URL)"
    url = settings.openai_url.rstrip("/")
    where = f"the OpenAI-compatible server at {url}"
    try:
        response = httpx.get(f"{_v1(url)}/models", timeout=PROBE_TIMEOUT_S, headers=_headers(settings))
    except httpx.TransportError as exc:
        return str(transport_error("the OpenAI-compatible server", url, "RAGKB_OPENAI_URL", PROBE_TIMEOUT_S, exc))
    if response.status_code in (401, 403):
        return f"{where} refused the request (HTTP {response.status_code}: {_error_message(response)}); check RAGKB_OPENAI_API_KEY"
    if response.status_code >= 400:
        return f"{where} does not answer like an OpenAI-compatible server (HTTP {response.status_code} on /v1/models)"
    try:
        response.json()
    except ValueError:
        return f"{where} does not answer like an OpenAI-compatible server (no JSON from /v1/models)"
    return None
