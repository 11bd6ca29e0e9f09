"""Embedded llama.cpp with the packaged Gemma 3 270M (a base model): only when chosen explicitly.

Measured on real documentation, the 270M base model answers almost nothing correctly and, left
alone, repeats its first sentence to the token cap. The guards here bound what it can do (stop
sequences, a repetition penalty over the whole answer, a short token budget); answer.py then keeps
only the sentences of its answer that a passage supports.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from ragkb.config import Settings
from ragkb.errors import LLMError
from ragkb.llm.base import GeneratorKind
from ragkb.weights import ModelChoice, gguf_choice

if TYPE_CHECKING:
    from llama_cpp import Llama

# Room for top_k passages of chunk_words plus the answer; Gemma 3 270M itself allows 32k.
N_CTX = 4096
# A 270M model gains little beyond a few threads; more only contend with the embedder.
THREADS = min(4, os.cpu_count() or 1)
# A base model keeps writing: the next line of an imagined exam, the next "[n] passage" of the
# prompt's list, the prompt itself again. The answer is one paragraph: stop at its end or at any
# restart of the prompt's structure (". [" is a new numbered item after a finished sentence).
STOPS = ["\n", "Question:", "Passages:", ". [", "Answer:"]
# Greedy decoding of a tiny model loops on one line ("[1]:\n[1]:\n..."); the penalty applies to
# every token of the answer so far (REPEAT_WINDOW), not only the last 64 as by default.
REPEAT_PENALTY = 1.3
REPEAT_WINDOW = 512
# One to three copied sentences fit in ~120 tokens; a longer answer from this model is a loop.
MAX_TOKENS = 128


@lru_cache(maxsize=1)
def llama_cpp_problem() -> str | None:
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

    llm = Llama(model_path=path, n_ctx=N_CTX, n_threads=THREADS, last_n_tokens_size=REPEAT_WINDOW, verbose=False)
    return llm, threading.Lock()


def completion_prompt(system: str, user: str) -> str:
    """A base model has no chat template: the instructions and the question become one document
    whose natural continuation, on the next line, is the answer."""
    return f"{system}\n\n{user}\n"


def gguf(settings: Settings) -> ModelChoice:
    """gguf_choice may assemble and verify the packaged file; a damaged copy must not crash status."""
    try:
        return gguf_choice(settings)
    except (OSError, ValueError) as exc:
        return ModelChoice(None, f"the GGUF could not be prepared under {settings.models_dir}: {exc}")


class LlamaCppGenerator:
    """Embedded llama.cpp: no server, no network, the packaged Gemma 3 270M by default."""

    kind: GeneratorKind = "llm"
    instruction_tuned = False
    reason = ""

    def __init__(self, settings: Settings, model: ModelChoice) -> None:
        self._model = model
        self._max_tokens = min(settings.max_answer_tokens, MAX_TOKENS)
        self.name = f"llamacpp:{model.path.name}" if model.path is not None else "llamacpp"

    def stream(self, system: str, user: str) -> Iterator[str]:
        if (problem := llama_cpp_problem()) is not None:
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
            if prompt_tokens >= N_CTX:
                raise LLMError(
                    f"the prompt is {prompt_tokens} tokens, more than the embedded model's context of "
                    f"{N_CTX}; lower RAGKB_TOP_K or RAGKB_CHUNK_WORDS"
                )
            completion = llm.create_completion(
                prompt,
                stream=True,
                temperature=0,
                max_tokens=self._max_tokens,
                stop=STOPS,
                repeat_penalty=REPEAT_PENALTY,
            )
            try:
                for chunk in completion:
                    text = chunk["choices"][0]["text"]
                    if text:
                        yield text
            finally:
                completion.close()  # the caller may stop early (a repeated sentence): free the model
