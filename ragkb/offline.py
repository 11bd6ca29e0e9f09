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
    "TOKENIZERS_PARALLELISM": "false",
    # Not egress, but progress bars from model loading would garble ragkb's own output.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def enforce() -> None:
    """Force the offline flags; a user cannot accidentally re-enable a download path."""
    for key, value in _FLAGS.items():
        os.environ[key] = value
