"""Ollama, the production backend: chat through the official client, and the probe `auto` uses."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama

from ragkb.config import Settings
from ragkb.errors import LLMError
from ragkb.llm.base import PROBE_TIMEOUT_S, GeneratorKind, ollama_base, transport_error


class OllamaGenerator:
    """Chat with a model served by Ollama, through the official client."""

    kind: GeneratorKind = "llm"
    instruction_tuned = True
    reason = ""

    def __init__(self, settings: Settings) -> None:
        self.url = ollama_base(settings.ollama_url)
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
            raise transport_error("Ollama", self.url, "RAGKB_OLLAMA_URL", self._timeout_s, exc) from None
        except ValueError as exc:  # undecodable or unexpected JSON: some other service on that port
            raise LLMError(
                f"{self.url} does not answer like Ollama ({exc.__class__.__name__}); check RAGKB_OLLAMA_URL"
            ) from None


def ollama_tag(model: str) -> str:
    """Ollama treats "llama3.2" and "llama3.2:latest" as the same model."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def ollama_problem(settings: Settings) -> str | None:
    """Why Ollama cannot answer right now, or None when it is up and has the model."""
    url = ollama_base(settings.ollama_url)
    try:
        response = httpx.get(f"{url}/api/tags", timeout=PROBE_TIMEOUT_S)
        response.raise_for_status()
        tags = response.json()
    except httpx.TransportError as exc:
        return str(transport_error("Ollama", url, "RAGKB_OLLAMA_URL", PROBE_TIMEOUT_S, exc))
    except httpx.HTTPStatusError as exc:
        return (
            f"{url} does not answer like Ollama (HTTP {exc.response.status_code} on /api/tags); check RAGKB_OLLAMA_URL"
        )
    except ValueError:
        return f"{url} does not answer like Ollama (no JSON from /api/tags); check RAGKB_OLLAMA_URL"
    wanted = ollama_tag(settings.llm_model)
    models = tags.get("models") if isinstance(tags, dict) else None
    names = {ollama_tag(entry.get("model") or entry.get("name") or "") for entry in models or [] if isinstance(entry, dict)}
    if wanted not in names:
        return f"Ollama at {url} has no model '{settings.llm_model}' (run `ollama pull {settings.llm_model}`)"
    return None
