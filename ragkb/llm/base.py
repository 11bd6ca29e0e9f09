"""What every generation backend shares: the interface answer.py talks to, the two backends that
need no model server (extractive, none), and the one translation of transport failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol
from urllib.parse import urlsplit

import httpx

from ragkb.errors import LLMError

GeneratorKind = Literal["llm", "extractive", "none"]

# Ollama's own convention for a bare "host[:port]" (the client applies the same rule).
OLLAMA_DEFAULT_PORT = 11434
# The auto probe must not make `ragkb ask` or `ragkb status` hang on a dead host.
PROBE_TIMEOUT_S = 1.0


class Generator(Protocol):
    name: str
    # False for a base model without a chat template: it needs a prompt that shows, not tells,
    # and answer.py keeps only the sentences of its answer that a passage supports.
    instruction_tuned: bool

    def stream(self, system: str, user: str) -> Iterator[str]: ...


def generator_kind(generator: object) -> GeneratorKind:
    """`llm` writes text from a prompt; `extractive` quotes sentences of the passages (answer.py
    selects them); `none` shows the passages only. Generators built outside this package (tests,
    benchmarks) may lack the attribute: their name decides."""
    kind = getattr(generator, "kind", None)
    if kind in ("llm", "extractive", "none"):
        return kind  # type: ignore[no-any-return]
    name = getattr(generator, "name", "")
    return "none" if name == "none" else "extractive" if name == "extractive" else "llm"


class NoGenerator:
    """Generates nothing: answer.py then shows the retrieved passages with their citations."""

    kind: GeneratorKind = "none"
    instruction_tuned = True
    name = "none"
    reason = ""

    def stream(self, system: str, user: str) -> Iterator[str]:
        return iter(())


class ExtractiveGenerator:
    """No model writes anything: answer.py quotes the one to three sentences of the retrieved
    passages that best answer the question (ragkb.extractive), each with its citation, or says it
    does not know. Needs only the embedding model retrieval has already loaded."""

    kind: GeneratorKind = "extractive"
    instruction_tuned = True
    name = "extractive"
    reason = ""

    def stream(self, system: str, user: str) -> Iterator[str]:
        return iter(())


def ollama_base(url: str) -> str:
    """One spelling of the Ollama URL for the probe, the client and every message."""
    if "://" not in url:
        split = urlsplit(f"http://{url}")
        url = f"http://{split.hostname}:{split.port or OLLAMA_DEFAULT_PORT}{split.path}"
    return url.rstrip("/")


def transport_error(service: str, url: str, setting: str, timeout_s: float, exc: httpx.TransportError) -> LLMError:
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

