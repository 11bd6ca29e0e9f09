"""int8 quantization of the embedding model converted to OpenVINO IR, with NNCF, offline.

Why: on a CPU without AMX (the AMD EPYC here), OpenVINO's bf16 runs MiniLM at 2.1-2.7x torch
fp32; int8 with static activation scales runs it at 3.6-4.2x, and SciFact dense nDCG@10 stays
at torch's level (eval/RESULTS.md §9: torch fp32 0.6451, bf16 0.6457, int8 0.6527 with the
shipped calibration set, 0.6453-0.6527 over three random 300-text calibration sets). Hybrid
ranking loses a little (SciFact 0.7382 -> 0.7353 on test, equal on train; 2 of 47 documentation
benchmark answers drop out of the top 5), so it runs only when chosen
(RAGKB_EMBED_BACKEND=openvino-int8, extra `int8`): for large ingests where speed matters more.

Static quantization needs calibration text to measure activation ranges. It must be on every
install, offline, and must not be an evaluation set: the paragraphs of CPython's own
`pydoc_data.topics` (the language reference behind `help()`, ~1 MB of English technical prose)
are. 300 of them, 50-200 words each, in a fixed order: the same model folder always gives the
same IR. Per-channel weight scales (NNCF's transformer preset): per-tensor scales ruin MiniLM
(DESIGN: mean cosine 0.94).
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ragkb.embedding import CompiledEncoder

# Bump when the calibration set or the quantization parameters change: conversions are redone.
CALIBRATION_VERSION = "pydoc-topics-300-mixed-1"
CALIBRATION_TEXTS = 300
log = logging.getLogger(__name__)


def calibration_texts(count: int = CALIBRATION_TEXTS) -> list[str]:
    """`count` paragraphs of the stdlib's pydoc topics, 50-200 words, in a fixed shuffled order."""
    from pydoc_data.topics import topics

    texts: list[str] = []
    for name in sorted(topics):
        words: list[str] = []
        for block in topics[name].split("\n\n"):
            words += block.split()
            if len(words) >= 50:
                texts += _pieces(words)
                words = []
        if len(words) >= 50:
            texts += _pieces(words)
    random.Random(0).shuffle(texts)
    return texts[:count]


def _pieces(words: list[str], low: int = 50, high: int = 200) -> list[str]:
    pieces = [" ".join(words[i : i + high]) for i in range(0, len(words), high)]
    return [p for p in pieces if len(p.split()) >= low]


def nncf_version() -> str:
    from importlib.metadata import version

    return version("nncf")


def quantize_int8(source: CompiledEncoder, target: Path) -> None:
    """Write `target`/model.xml: the fp32 IR `source` runs, int8 (weights per channel,
    activations per tensor, calibrated on `calibration_texts` fed exactly as `source` feeds its
    graph). Takes ~40 s on 2 cores, once per model."""
    from ragkb.embedding import import_openvino

    ov = import_openvino()  # blocks openvino_telemetry first: nncf then sends nothing
    import nncf

    encodings = source.tokenize(calibration_texts())
    samples = [source.feed(encodings, np.array([i]))[0] for i in range(len(encodings))]
    log.info("quantizing the embedding model to int8 (once, ~1 min): %s", source.model.path)
    fp32 = ov.Core().read_model(str(source.folder / "model.xml"))
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        quantized: Any = nncf.quantize(
            fp32, nncf.Dataset(samples), subset_size=len(samples),
            preset=nncf.QuantizationPreset.MIXED, model_type=nncf.ModelType.TRANSFORMER,
        )  # fmt: skip
    ov.save_model(quantized, str(target / "model.xml"), compress_to_fp16=False)
