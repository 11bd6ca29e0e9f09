"""Generation backends behind one small interface, so answer.py never knows which one runs.

Ollama is the production backend; an OpenAI-compatible server (llama-server, vLLM) serves sites
that already run one; `extractive` quotes the best sentences of the passages with no model at
all and is what `auto` falls back to; embedded llama.cpp with the packaged Gemma 3 270M runs
only when chosen; `none` returns passages only. `backend_report` says which one answers and why.

Modules: base (interface, extractive, none, transport errors), ollama, openai, llamacpp, choice.
"""

from ragkb.errors import LLMError
from ragkb.llm.base import ExtractiveGenerator, Generator, GeneratorKind, NoGenerator, generator_kind
from ragkb.llm.choice import Choice, backend_report, choose, resolve_backend
from ragkb.llm.llamacpp import LlamaCppGenerator, completion_prompt
from ragkb.llm.ollama import OllamaGenerator
from ragkb.llm.openai import OpenAIGenerator

__all__ = [
    "Choice",
    "ExtractiveGenerator",
    "Generator",
    "GeneratorKind",
    "LLMError",
    "LlamaCppGenerator",
    "NoGenerator",
    "OllamaGenerator",
    "OpenAIGenerator",
    "backend_report",
    "choose",
    "completion_prompt",
    "generator_kind",
    "resolve_backend",
]
