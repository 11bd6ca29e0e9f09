"""Offline and no-telemetry switches for every dependency that would otherwise reach out.

These are process environment flags read by third-party libraries at import time, so they are
set here (once, before those imports) rather than being part of ragkb's own Settings.
"""

from __future__ import annotations

import os

_FLAGS: dict[str, str] = {
    # Hugging Face hub / transformers / sentence-transformers: never download, never ping.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    # unstructured: its scarf analytics ping and partition telemetry, and its usage banner.
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    # Streamlit usage statistics (also off in ui/.streamlit/config.toml).
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    # onnxruntime (>= 1.29 official Linux wheels) has native 1DS telemetry that is ON by default:
    # on its first OrtEnv (created when `import onnxruntime` loads its pybind module) it writes a
    # device id and an event cache under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and,
    # ~10 s later, looks up mobile.events.data.microsoft.com and uploads over HTTPS. Every PDF
    # pulls it in: unstructured.partition.pdf -> pdf_image_utils -> unstructured_inference
    # .inference.layout -> models.detectron2onnx -> `import onnxruntime`, all at module level,
    # so the import cannot be avoided without patching unstructured. ORT_DISABLE_TELEMETRY=1 is
    # ORT's full opt-out (no uploader, no device id, no cache; latched for the process) and must
    # be in the environment before that first OrtEnv: the native code reads it with getenv,
    # which sees os.environ. `onnxruntime.disable_telemetry_events()` is not enough: it leaves
    # the uploader running and the ProcessInfo event still goes out. ORT also goes quiet by
    # itself when it sees CI=true, so only tests/test_no_egress.py (which strips CI) shows this.
    # ORT_TELEMETRY_DISABLED is the spelling in some upstream sources; set too, in case a later
    # wheel reads that one (the 1.32 wheel reads ORT_DISABLE_TELEMETRY).
    "ORT_DISABLE_TELEMETRY": "1",
    "ORT_TELEMETRY_DISABLED": "1",
    # OpenVINO's Python telemetry (openvino-telemetry: Google Analytics on `import openvino`, a
    # client id under ~/intel) has no opt-out variable (only CI=true, which would change other
    # tools): ragkb.embedding makes `import openvino_telemetry` fail, so openvino uses its stub.
    # Nothing to set for it here.
    "TOKENIZERS_PARALLELISM": "false",
    # Not egress, but progress bars from model loading would garble ragkb's own output.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def enforce() -> None:
    """Force the offline flags; a user cannot accidentally re-enable a download path."""
    for key, value in _FLAGS.items():
        os.environ[key] = value
