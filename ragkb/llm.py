"""Generation backends behind one small interface, so answer.py never knows which one runs.

Ollama is the production backend; an OpenAI-compatible server (llama-server, vLLM) serves sites
that already run one; embedded llama.cpp with the packaged Gemma 3 270M answers on a machine with
no server at all; `none` returns passages only. `auto` picks the first that can actually answer
and `backend_report` says why, because "which model answered, and why that one" is the first
question an operator asks when answers look wrong.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import httpx
import ollama

from ragkb.config import Settings
from ragkb.errors import LLMError
from ragkb.weights import ModelChoice, gguf_choice

if TYPE_CHECKING:
    from llama_cpp import Llama

# Ollama's own convention for a bare "host[:port]" (the client applies the same rule).
_OLLAMA_DEFAULT_PORT = 11434
# The auto probe must not make `ragkb ask` or `ragkb status` hang on a dead host.
_PROBE_TIMEOUT_S = 1.0
# Room for top_k passages of chunk_words plus the answer; Gemma 3 270M itself allows 32k.
_LLAMACPP_N_CTX = 4096
# A 270M model gains little beyond a few threads; more only contend with the embedder.
_LLAMACPP_THREADS = min(4, os.cpu_count() or 1)
# A base model keeps writing the next "Question:" of an imagined exam: stop at the end of the
# first answer paragraph or at any restart of the prompt's own structure.
_LLAMACPP_STOPS = ["\n\n", "\nQuestion:", "\nPassages:"]
# Greedy decoding of a tiny model loops on one line ("[1]:\n[1]:\n..."); a mild penalty breaks it.
_LLAMACPP_REPEAT_PENALTY = 1.3
_PASSAGES_ONLY = "answers show the retrieved passages only"


class Generator(Protocol):
    name: str
    # False for a base model without a chat template: it needs a prompt that shows, not tells.
    instruction_tuned: bool

    def stream(self, system: str, user: str) -> Iterator[str]: ...


def _ollama_base(url: str) -> str:
    """One spelling of the Ollama URL for the probe, the client and every message."""
    if "://" not in url:
        split = urlsplit(f"http://{url}")
        url = f"http://{split.hostname}:{split.port or _OLLAMA_DEFAULT_PORT}{split.path}"
    return url.rstrip("/")


def _transport_error(service: str, url: str, setting: str, timeout_s: float, exc: httpx.TransportError) -> LLMError:
    """Turn httpx's low-level failure into what the operator has to do about it."""
    if isinstance(exc, httpx.ConnectTimeout):
        return LLMError(
            f"cannot reach {service} at {url} (no answer within {timeout_s:g} s); start it or set {setting}"
        )
    if isinstance(exc, httpx.ConnectError):
        why = "connection refused" if "refused" in str(exc).lower() else str(exc) or "connection failed"
        return LLMError(f"cannot reach {service} at {url} ({why}); start it or set {setting}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return LLMError(f"{service} URL {url} is not an http(s) URL; fix {setting}")
    if isinstance(exc, httpx.ReadTimeout):
        return LLMError(
            f"{service} at {url} sent nothing for {timeout_s:g} s; raise RAGKB_LLM_TIMEOUT_S or use a smaller model"
        )
    return LLMError(f"lost the connection to {service} at {url}: {str(exc) or type(exc).__name__}")


class OllamaGenerator:
    """Chat with a model served by Ollama, through the official client."""

    instruction_tuned = True

    def __init__(self, settings: Settings) -> None:
        self.url = _ollama_base(settings.ollama_url)
        self.model = settings.llm_model
        self.name = f"ollama:{self.model}"
        self._timeout_s = settings.llm_timeout_s
        self._max_tokens = settings.max_answer_tokens
        self._client = ollama.Client(host=self.url, timeout=settings.llm_timeout_s)

    def stream(self, system: str, user: str) -> Iterator[str]:
        try:
            for part in self._client.chat(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                stream=True,
                options={"temperature": 0, "num_predict": self._max_tokens},
            ):
                if part.message.content:
                    yield part.message.content
        except ollama.ResponseError as exc:
            if exc.status_code == 404 and self.model.split(":")[0] in str(exc.error):
                raise LLMError(
                    f"Ollama at {self.url} has no model '{self.model}': run `ollama pull {self.model}`"
                ) from None
            if exc.status_code == 404:  # no /api/chat at all: often llama-server or vLLM on that port
                raise LLMError(
                    f"{self.url} has no Ollama API (HTTP 404 on /api/chat: {exc.error}); check RAGKB_OLLAMA_URL, "
                    "or for an OpenAI-compatible server set RAGKB_LLM_BACKEND=openai and RAGKB_OPENAI_URL"
                ) from None
            status = f" (HTTP {exc.status_code})" if exc.status_code > 0 else ""
            raise LLMError(f"Ollama at {self.url} failed{status}: {exc.error}") from None
        except httpx.TransportError as exc:
            # The client wraps connection errors only for non-streaming calls; streams raise httpx's.
            raise _transport_error("Ollama", self.url, "RAGKB_OLLAMA_URL", self._timeout_s, exc) from None
        except ValueError as exc:  # undecodable or unexpected JSON: some other service on that port
            raise LLMError(
                f"{self.url} does not answer like Ollama ({exc.__class__.__name__}); check RAGKB_OLLAMA_URL"
            ) from None


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


class OpenAIGenerator:
    """Chat completions from any OpenAI-compatible server (llama-server, vLLM, LocalAI)."""

    instruction_tuned = True

    def __init__(self, settings: Settings) -> None:
        self.url = settings.openai_url.rstrip("/") if settings.openai_url else None
        self.model = settings.llm_model
        self.name = f"openai:{self.model}@{self.url or 'unset'}"
        self._timeout_s = settings.llm_timeout_s
        self._max_tokens = settings.max_answer_tokens
        headers = {}
        if settings.openai_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        self._client = httpx.Client(timeout=settings.llm_timeout_s, headers=headers)

    @property
    def endpoint(self) -> str:
        """OpenAI SDKs take a base URL ending in /v1; accept it with or without."""
        base = self.url or ""
        return f"{base.removesuffix('/v1')}/v1/chat/completions"

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
            raise _transport_error(
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


@lru_cache(maxsize=1)
def _llama_cpp_problem() -> str | None:
    """Import once: the import loads the native library, and a broken build fails only here."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        return f"llama-cpp-python is not installed ({exc}); install the extra: pip install 'ragkb[llamacpp]'"
    except (OSError, RuntimeError) as exc:  # the package is there but its native library is not usable
        return f"llama-cpp-python is broken ({exc}); reinstall it: pip install --force-reinstall 'ragkb[llamacpp]'"
    return None


@lru_cache(maxsize=2)
def _load_llama(path: str) -> tuple[Llama, threading.Lock]:
    """Loading takes a while and the UI asks from many threads: one model and one lock per file."""
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=_LLAMACPP_N_CTX, n_threads=_LLAMACPP_THREADS, verbose=False), threading.Lock()


def completion_prompt(system: str, user: str) -> str:
    """A base model has no chat template: the instructions and the question become one document
    whose natural continuation, on the next line, is the answer."""
    return f"{system}\n\n{user}\n"


class LlamaCppGenerator:
    """Embedded llama.cpp: no server, no network, the packaged Gemma 3 270M by default."""

    instruction_tuned = False

    def __init__(self, settings: Settings, model: ModelChoice) -> None:
        self._model = model
        self._max_tokens = settings.max_answer_tokens
        self.name = f"llamacpp:{model.path.name}" if model.path is not None else "llamacpp"

    def stream(self, system: str, user: str) -> Iterator[str]:
        if (problem := _llama_cpp_problem()) is not None:
            raise LLMError(f"embedded llama.cpp is unavailable: {problem}")
        if self._model.path is None:
            raise LLMError(f"embedded llama.cpp has no model: {self._model.reason}")
        try:
            llm, lock = _load_llama(str(self._model.path))
        except ValueError as exc:  # llama-cpp-python's signal for an unreadable or foreign file
            raise LLMError(f"embedded llama.cpp cannot load {self._model.path}: {exc}") from None
        prompt = completion_prompt(system, user)
        with lock:
            prompt_tokens = len(llm.tokenize(prompt.encode("utf-8")))
            if prompt_tokens >= _LLAMACPP_N_CTX:
                raise LLMError(
                    f"the prompt is {prompt_tokens} tokens, more than the embedded model's context of "
                    f"{_LLAMACPP_N_CTX}; lower RAGKB_TOP_K or RAGKB_CHUNK_WORDS"
                )
            for chunk in llm.create_completion(
                prompt,
                stream=True,
                temperature=0,
                max_tokens=self._max_tokens,
                stop=_LLAMACPP_STOPS,
                repeat_penalty=_LLAMACPP_REPEAT_PENALTY,
            ):
                text = chunk["choices"][0]["text"]
                if text:
                    yield text


class NoGenerator:
    """Generates nothing: answer.py then shows the retrieved passages with their citations."""

    instruction_tuned = True

    name = "none"

    def stream(self, system: str, user: str) -> Iterator[str]:
        return iter(())


def _ollama_tag(model: str) -> str:
    """Ollama treats "llama3.2" and "llama3.2:latest" as the same model."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _ollama_problem(settings: Settings) -> str | None:
    """Why Ollama cannot answer right now, or None when it is up and has the model."""
    url = _ollama_base(settings.ollama_url)
    try:
        response = httpx.get(f"{url}/api/tags", timeout=_PROBE_TIMEOUT_S)
        response.raise_for_status()
        tags = response.json()
    except httpx.TransportError as exc:
        return str(_transport_error("Ollama", url, "RAGKB_OLLAMA_URL", _PROBE_TIMEOUT_S, exc))
    except httpx.HTTPStatusError as exc:
        return (
            f"{url} does not answer like Ollama (HTTP {exc.response.status_code} on /api/tags); check RAGKB_OLLAMA_URL"
        )
    except ValueError:
        return f"{url} does not answer like Ollama (no JSON from /api/tags); check RAGKB_OLLAMA_URL"
    wanted = _ollama_tag(settings.llm_model)
    names = {_ollama_tag(entry.get("model") or entry.get("name") or "") for entry in tags.get("models") or []}
    if wanted not in names:
        return f"Ollama at {url} has no model '{settings.llm_model}' (run `ollama pull {settings.llm_model}`)"
    return None


def _gguf(settings: Settings) -> ModelChoice:
    """gguf_choice may assemble and verify the packaged file; a damaged copy must not crash status."""
    try:
        return gguf_choice(settings)
    except (OSError, ValueError) as exc:
        return ModelChoice(None, f"the GGUF could not be prepared under {settings.models_dir}: {exc}")


@dataclass(frozen=True)
class _Choice:
    generator: Generator
    reason: str


def _configured(settings: Settings) -> str:
    return f"configured (RAGKB_LLM_BACKEND={settings.llm_backend})"


def _choose(settings: Settings) -> _Choice:
    backend = settings.llm_backend
    configured = _configured(settings)
    if backend == "ollama":
        return _Choice(OllamaGenerator(settings), f"{configured}: Ollama at {_ollama_base(settings.ollama_url)}")
    if backend == "openai":
        openai = OpenAIGenerator(settings)
        where = openai.url or "nowhere: RAGKB_OPENAI_URL is not set"
        return _Choice(openai, f"{configured}: OpenAI-compatible server at {where}")
    if backend == "llamacpp":
        model = _gguf(settings)
        problem = _llama_cpp_problem()
        detail = problem or (model.reason if model.available else f"no model: {model.reason}")
        return _Choice(LlamaCppGenerator(settings, model), f"{configured}: embedded llama.cpp, {detail}")
    if backend == "none":
        return _Choice(NoGenerator(), f"{configured}: {_PASSAGES_ONLY}")

    ollama_problem = _ollama_problem(settings)
    if ollama_problem is None:
        return _Choice(
            OllamaGenerator(settings),
            f"Ollama at {_ollama_base(settings.ollama_url)} serves {settings.llm_model}",
        )
    llama_problem = _llama_cpp_problem()
    if llama_problem is not None:
        return _Choice(NoGenerator(), f"{ollama_problem}; {llama_problem}; {_PASSAGES_ONLY}")
    model = _gguf(settings)
    if not model.available:
        return _Choice(NoGenerator(), f"{ollama_problem}; no GGUF for llama.cpp: {model.reason}; {_PASSAGES_ONLY}")
    return _Choice(LlamaCppGenerator(settings, model), f"{ollama_problem}; embedded llama.cpp with {model.reason}")


def resolve_backend(settings: Settings) -> Generator:
    """The generator to answer with. Never raises: a misconfigured backend fails in stream() with
    an LLMError, the one place callers already handle generation errors. Loads no model."""
    return _choose(settings).generator


def backend_report(settings: Settings) -> dict[str, str]:
    """For `ragkb status`: the backend that would answer now, and why that one.

    A configured Ollama is probed too, so status shows a dead server before a user asks.
    """
    choice = _choose(settings)
    if settings.llm_backend != "ollama":
        return {"backend": choice.generator.name, "reason": choice.reason}
    serving = f"Ollama at {_ollama_base(settings.ollama_url)} serves {settings.llm_model}"
    return {
        "backend": choice.generator.name,
        "reason": f"{_configured(settings)}: {_ollama_problem(settings) or serving}",
    }
