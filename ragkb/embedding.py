"""Embedding runtimes: the packaged sentence-transformers model converted locally to OpenVINO IR
or ONNX, run with sentence-transformers' own tokenisation, pooling and normalisation.

int8 (`openvino-int8`) is the OpenVINO conversion quantized by ragkb.quantize.
Conversion runs once per source folder and converter version, offline, under
RAGKB_HOME/models/embeddings/: written under a temporary name and renamed into place, so readers
see a complete conversion or none; a lock makes a racing process wait rather than convert again.

OpenVINO telemetry: `import openvino` runs openvino.tools.ovc's __init__, which sends a Google
Analytics event through openvino_telemetry (and writes a client id under ~/intel) unless a
consent file says no; `convert_model` sends more. ovc uses its no-op telemetry_stub when
`import openvino_telemetry` fails, so importing this module (ragkb.weights does) maps that name
to None in sys.modules first: see block_openvino_telemetry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragkb.offline import enforce

# Bump when the exported graph or its metadata changes: existing conversions are then redone.
CONVERTER_VERSION = "1"
_SUPPORTED_POOLING = ("cls", "max", "mean", "mean_sqrt_len_tokens")
_LEGACY_POOLING = {  # sentence-transformers < 5 spelled the pooling mode as booleans
    f"pooling_mode_{key}": mode for key, mode in [("cls_token", "cls"), ("max_tokens", "max"), ("mean_tokens", "mean"),
    ("mean_sqrt_len_tokens", "mean_sqrt_len_tokens"), ("weightedmean_tokens", "weightedmean"), ("lasttoken", "lasttoken")]
}
MARKER = "ragkb-conversion.json"
INT8 = "openvino-int8"  # the OpenVINO conversion quantized to int8 (ragkb.quantize)
conversions = 0  # conversions done by this process (tests check that a second load reuses one)


class Unsupported(ValueError):
    """The model folder cannot be run outside sentence-transformers (the reason says why)."""


@dataclass(frozen=True)
class SentenceModel:
    """What sentence-transformers would do with a model folder, read from its own config files."""

    path: Path
    transformer: Path
    max_length: int
    lowercase: bool
    pooling: tuple[str, ...]
    normalize: bool
    dim: int


def read_sentence_model(path: Path) -> SentenceModel:
    """modules.json -> Transformer (+ sentence_bert_config.json), Pooling config, Normalize."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError) as exc:
        raise Unsupported(f"{path} has no readable modules.json ({exc})") from None
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise Unsupported(f"module stack {kinds} is not Transformer, Pooling[, Normalize]")
    transformer = path / modules[0]["path"]
    if not (transformer / "tokenizer.json").is_file():
        raise Unsupported(f"{transformer} has no tokenizer.json")
    st = _json(transformer / "sentence_bert_config.json")
    hf = _json(transformer / "config.json")
    max_length = st.get("max_seq_length") or min(hf.get("max_position_embeddings", 512), 512)
    pool = _json(path / modules[1]["path"] / "config.json")
    modes = pool.get("pooling_mode") or [v for k, v in _LEGACY_POOLING.items() if pool.get(k)] or ["mean"]
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if unsupported := [m for m in modes if m not in _SUPPORTED_POOLING]:
        raise Unsupported(f"pooling mode {unsupported} is not implemented outside sentence-transformers")
    width = pool.get("embedding_dimension") or pool.get("word_embedding_dimension") or hf["hidden_size"]
    return SentenceModel(
        path, transformer, int(max_length), bool(st.get("do_lower_case", False)), modes,
        "Normalize" in kinds, int(width) * len(modes),
    )


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def pool(hidden: np.ndarray, mask: np.ndarray, modes: tuple[str, ...], normalize: bool) -> np.ndarray:
    """sentence-transformers' Pooling (cls/max/mean/mean_sqrt_len_tokens) and Normalize, in numpy."""
    hidden = hidden.astype(np.float32, copy=False)
    weights = mask[..., None].astype(np.float32)
    count = np.clip(weights.sum(axis=1), 1e-9, None)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(np.where(weights > 0, hidden, -1e9).max(axis=1))
        else:
            summed = (hidden * weights).sum(axis=1)
            parts.append(summed / (count if mode == "mean" else np.sqrt(count)))
    vectors = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors.astype(np.float32, copy=False)


class CompiledEncoder:
    """Tokenise with `tokenizers`, run a converted graph, pool: the same vectors as torch."""

    label = "compiled"

    def __init__(self, model: SentenceModel, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.model, self.dim, self.folder = model, model.dim, folder
        self.meta: dict[str, Any] = json.loads((folder / MARKER).read_text())  # what converted_model wrote
        self.input_names: list[str] = self.meta["inputs"]
        self.tokenizer = Tokenizer.from_file(str(model.transformer / "tokenizer.json"))
        padding = self.tokenizer.padding or {}
        self.tokenizer.no_padding()  # padded per batch below, to the longest of the batch
        self.tokenizer.enable_truncation(max_length=model.max_length)
        special = _json(model.transformer / "special_tokens_map.json").get("pad_token", "[PAD]")
        special = special.get("content", "[PAD]") if isinstance(special, dict) else special
        self.pad_id = padding.get("pad_id", self.tokenizer.token_to_id(special) or 0)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenize(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")  # longest first
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), max(1, batch_size)):
            index = order[start:start + max(1, batch_size)]
            out[index] = self._batch(encodings, index)
        return out

    def tokenize(self, texts: list[str]) -> list[Any]:
        """Token encodings as the model's own tokenizer makes them (lower-cased where it is)."""
        return self.tokenizer.encode_batch([t.strip().lower() if self.model.lowercase else t.strip() for t in texts])

    def _batch(self, encodings: list[Any], index: np.ndarray) -> np.ndarray:
        """Pad one batch to its longest member, run it, pool it."""
        feed, mask = self.feed(encodings, index)
        return pool(self._infer(feed), mask, self.model.pooling, self.model.normalize)

    def feed(self, encodings: list[Any], index: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The graph's inputs for `encodings[index]`, padded to the longest of them, and the
        attention mask pooling needs."""
        width = max(len(encodings[i].ids) for i in index)
        ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(index), width), dtype=np.int64)
        mask = np.zeros((len(index), width), dtype=np.int64)
        for row, i in enumerate(index):
            n = len(encodings[i].ids)
            ids[row, :n], types[row, :n], mask[row, :n] = encodings[i].ids, encodings[i].type_ids, 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {k: feed[k] for k in self.input_names}, mask

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class OpenVINOEncoder(CompiledEncoder):
    def __init__(self, model: SentenceModel, folder: Path, precision: str | None = None) -> None:
        """`precision` ("f32", "bf16") overrides OpenVINO's default (bf16 where the CPU has it).
        LATENCY: one stream using every core; THROUGHPUT streams measured no faster here."""
        ov = import_openvino()
        super().__init__(model, folder)
        config = {"PERFORMANCE_HINT": "LATENCY", **({"INFERENCE_PRECISION_HINT": precision} if precision else {})}
        self._compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", config)
        self._idle: list[Any] = []  # an infer request runs one call at a time: one per thread in use
        self._lock = threading.Lock()
        precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        precision = {"f32": "fp32", "f16": "fp16"}.get(precision, precision)
        if "quantized" in self.meta:
            precision = f"int8 ({precision} elsewhere)"  # matmuls in int8, the rest (softmax, norms) as hinted
        self.label = f"openvino:CPU {precision}"

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            request = self._idle.pop() if self._idle else self._compiled.create_infer_request()
        try:
            return request.infer(feed)[0]  # a copy (share_outputs=False), safe after release
        finally:
            with self._lock:
                self._idle.append(request)


class OnnxEncoder(CompiledEncoder):
    def __init__(self, model: SentenceModel, folder: Path) -> None:
        enforce()  # ORT_DISABLE_TELEMETRY must be set before onnxruntime creates its environment
        import onnxruntime

        super().__init__(model, folder)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.label = "onnx:CPU fp32"

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run(None, feed)[0]


def block_openvino_telemetry() -> None:
    """Make every `import openvino_telemetry` in this process fail, so openvino uses its stub.

    Call before openvino is first imported. If something imported openvino earlier, the import
    event may already be out; then the stub is swapped in for the rest of the process.
    """
    from importlib import import_module

    earlier = sys.modules.get("openvino_telemetry")
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    if earlier is not None:  # imported before us: silence the live singleton too
        instance = getattr(earlier.Telemetry, "_SingletonMetaClass__single_instance", None)
        if instance is not None:
            instance.consent = False

    for name in ("openvino.tools.ovc.telemetry_utils", "openvino.tools.ovc.convert_impl", "openvino.tools.ovc.utils"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "tm", None) is not None:
            module.tm = import_module("openvino.tools.ovc.telemetry_stub")


# At import, so that openvino imported after ragkb.weights by anyone (a test, a library) is quiet.
block_openvino_telemetry()


def import_openvino() -> Any:
    enforce()
    block_openvino_telemetry()
    import openvino

    return openvino


def conversion_key(source: Path, fmt: str) -> str:
    """Changes when any file of the source folder or the converter changes."""
    import torch

    versions = [CONVERTER_VERSION, fmt, torch.__version__]
    if fmt.startswith("openvino"):
        versions.append(import_openvino().__version__)
    if fmt == INT8:
        from ragkb import quantize

        versions += [quantize.nncf_version(), quantize.CALIBRATION_VERSION]
    digest = hashlib.sha256("\n".join(versions + [str(source.resolve())]).encode())
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def converted_model(models_dir: Path, model: SentenceModel, fmt: str) -> Path:
    """The folder holding `model` converted to `fmt` ("openvino", "openvino-int8" or "onnx"),
    converting once; int8 is quantized from the "openvino" conversion (converted first)."""
    parent = models_dir / "embeddings"
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / f"{model.path.parent.name}-{model.path.name}-{fmt}-{conversion_key(model.path, fmt)}"
    if (target / MARKER).is_file():
        return target
    with open(parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a racing process waits here, then finds the result
        if (target / MARKER).is_file():
            return target
        temporary = parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            temporary.mkdir()
            meta: dict[str, Any] = {"source": str(model.path), "format": fmt}
            if fmt == INT8:
                from ragkb import quantize

                source = CompiledEncoder(model, converted_model(models_dir, model, "openvino"))
                meta["inputs"] = source.input_names
                quantize.quantize_int8(source, temporary)
                meta["quantized"] = f"int8, nncf {quantize.nncf_version()}, calibration {quantize.CALIBRATION_VERSION}"
            else:
                meta["inputs"] = _export(model, fmt, temporary)
            meta.update(converter=CONVERTER_VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            (temporary / MARKER).write_text(json.dumps(meta, indent=1))
            if target.exists():  # a leftover without a marker: never complete, replace it
                shutil.rmtree(target)
            try:
                os.rename(temporary, target)
            except OSError:  # another process got there first (a filesystem without flock)
                if not (target / MARKER).is_file():
                    raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    global conversions
    conversions += 1
    return target


def _export(model: SentenceModel, fmt: str, folder: Path) -> list[str]:
    """Trace the transformer (token embeddings out; pooling stays in numpy) into `folder`."""
    import inspect

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    enforce()
    hf_logging.set_verbosity_error()
    network = AutoModel.from_pretrained(str(model.transformer), local_files_only=True).eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(network.forward).parameters:
        names.append("token_type_ids")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.network(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    wrapper = TokenEmbeddings().eval()
    example = {name: torch.ones((2, 16), dtype=torch.long) for name in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "openvino":
            ov = import_openvino()
            converted = ov.convert_model(wrapper, example_input=example)
            ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)
        else:
            axes = {name: {0: "batch", 1: "tokens"} for name in names}
            torch.onnx.export(
                wrapper, tuple(example[n] for n in names), str(folder / "model.onnx"),
                input_names=names, output_names=["token_embeddings"], opset_version=17,
                dynamic_axes={**axes, "token_embeddings": {0: "batch", 1: "tokens"}}, dynamo=False,
            )
    return names
