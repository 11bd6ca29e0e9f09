"""Which backend answers, and why: `auto` tries Ollama, then an OpenAI-compatible server when one
is configured, then falls back to `extractive`. The embedded Gemma (`llamacpp`) runs only when
chosen explicitly: it answers almost nothing correctly on real documentation, so it is never the
silent default. "Which model answered, and why that one" is the first question an operator asks
when answers look wrong: `backend_report` answers it for status, the UI and the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragkb.config import Settings
from ragkb.llm.base import ExtractiveGenerator, Generator, NoGenerator, ollama_base
from ragkb.llm.llamacpp import LlamaCppGenerator, gguf, llama_cpp_problem
from ragkb.llm.ollama import OllamaGenerator, ollama_problem
from ragkb.llm.openai import OpenAIGenerator, openai_problem

PASSAGES_ONLY = "answers show the retrieved passages only"
EXTRACTIVE = (
    "extractive answers: the best one to three sentences of the retrieved passages, quoted with their "
    "citations, or \"I don't know\" when none is close enough (RAGKB_LLM_BACKEND=llamacpp runs the "
    "embedded Gemma 3 270M instead)"
)


@dataclass(frozen=True)
class Choice:
    generator: Generator
    reason: str


def _configured(settings: Settings) -> str:
    return f"configured (RAGKB_LLM_BACKEND={settings.llm_backend})"


def _explicit(settings: Settings) -> Choice | None:
    backend = settings.llm_backend
    configured = _configured(settings)
    if backend == "ollama":
        return Choice(OllamaGenerator(settings), f"{configured}: Ollama at {ollama_base(settings.ollama_url)}")
    if backend == "openai":
        openai = OpenAIGenerator(settings)
        where = openai.url or "nowhere: RAGKB_OPENAI_URL is not set"
        return Choice(openai, f"{configured}: OpenAI-compatible server at {where}")
    if backend == "llamacpp":
        model = gguf(settings)
        problem = llama_cpp_problem()
        detail = problem or (model.reason if model.available else f"no model: {model.reason}")
        return Choice(
            LlamaCppGenerator(settings, model),
            f"{configured}: embedded llama.cpp, {detail}; a small base model: answers keep only the sentences a passage supports",
        )
    if backend == "extractive":
        return Choice(ExtractiveGenerator(), f"{configured}: {EXTRACTIVE}")
    if backend == "none":
        return Choice(NoGenerator(), f"{configured}: {PASSAGES_ONLY}")
    return None


def choose(settings: Settings) -> Choice:
    """The backend for these settings and the reason; probes servers (1 s each), loads no model."""
    explicit = _explicit(settings)
    if explicit is not None:
        chosen = explicit
    else:
        problems = []
        problem = ollama_problem(settings)
        if problem is None:
            chosen = Choice(
                OllamaGenerator(settings), f"Ollama at {ollama_base(settings.ollama_url)} serves {settings.llm_model}"
            )
        else:
            problems.append(problem)
            problem = openai_problem(settings) if settings.openai_url else None
            if settings.openai_url and problem is None:
                openai = OpenAIGenerator(settings)
                chosen = Choice(openai, f"{'; '.join(problems)}; OpenAI-compatible server at {openai.url} answers")
            else:
                if problem is not None:
                    problems.append(problem)
                chosen = Choice(ExtractiveGenerator(), f"{'; '.join(problems)}; {EXTRACTIVE}")
    chosen.generator.reason = chosen.reason  # type: ignore[misc]  # shown with each answer
    return chosen


def resolve_backend(settings: Settings) -> Generator:
    """The generator to answer with. Never raises: a misconfigured backend fails in stream() with
    an LLMError, the one place callers already handle generation errors. Loads no model."""
    return choose(settings).generator


def backend_report(settings: Settings) -> dict[str, str]:
    """For `ragkb status`, the UI and the API: the backend that would answer now, and why that one.

    A configured Ollama or OpenAI-compatible server is probed too, so status shows a dead server
    before a user asks.
    """
    choice = choose(settings)
    report = {"backend": choice.generator.name, "reason": choice.reason}
    if settings.llm_backend == "ollama":
        serving = f"Ollama at {ollama_base(settings.ollama_url)} serves {settings.llm_model}"
        report["reason"] = f"{_configured(settings)}: {ollama_problem(settings) or serving}"
    elif settings.llm_backend == "openai" and settings.openai_url:
        problem = openai_problem(settings)
        if problem is not None:
            report["reason"] = f"{_configured(settings)}: {problem}"
    return report
