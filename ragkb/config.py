"""All configuration in one place: defaults < ragkb.toml < RAGKB_* environment variables.

The toml file is found by `config_path()`, in this order, never relative to the working
directory (an ingest started from another folder must read the same ACLs as the UI):
1. RAGKB_CONFIG, which must name an existing file (a typo is an error, not "no config");
2. ${XDG_CONFIG_HOME:-~/.config}/ragkb/ragkb.toml;
3. /etc/ragkb/ragkb.toml.
None of them existing means defaults and RAGKB_* variables only.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ragkb.errors import ConfigError


SYSTEM_CONFIG = Path("/etc/ragkb/ragkb.toml")


def config_path() -> Path | None:
    """The ragkb.toml in force (see the module docstring for the order), or None."""
    named = os.environ.get("RAGKB_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"RAGKB_CONFIG={named} does not exist or is not a file")
        return path.resolve()
    user_dir = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for candidate in (user_dir / "ragkb" / "ragkb.toml", SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


class SourceFolder(BaseModel):
    """A folder the nightly job ingests, and the groups allowed to read what it holds."""

    path: Path
    groups: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAGKB_", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    home: Path = Path(".ragkb")
    collection: str = "ragkb"
    qdrant_url: str | None = None
    # Without a URL: Qdrant's engine in-process (edge), or qdrant-client's local mode (local;
    # brute force in Python, for small bases and as the reference in tests).
    embedded_store: Literal["edge", "local"] = "edge"
    qdrant_api_key: SecretStr | None = None
    # The service builds the embedded store's HNSW index (in a child process, queries keep
    # being answered) when its ingest queue goes idle with at least this many points unindexed:
    # until then they are searched exactly, 42 ms p95 at 100k instead of 21 (eval/RESULTS.md §9).
    optimize_min_points: int = 20_000
    # Only honoured when a server creates the collection (scale-out on a Qdrant cluster).
    shard_number: int = 1
    replication_factor: int = 1

    # --- ingestion ---------------------------------------------------------------------------
    sources: list[SourceFolder] = Field(default_factory=list)
    max_file_mb: float = 100.0
    chunk_words: int = 180
    chunk_overlap_words: int = 30
    embed_batch_size: int = 32
    upsert_batch_size: int = 256
    # Parser processes beside the embedder; 0 = one per core but one (the embedder's).
    parse_workers: int = 0
    pdf_max_pages: int = 2000
    # Zip-based files (DOCX, PPTX) whose members add up to more are refused unopened: the
    # 872-page handbook unzips to 5.5 MB, while lxml needs ~16x the XML size in memory.
    max_unzipped_mb: float = 256.0
    # OCR (Tesseract) of image files and of PDF pages without a text layer: auto = when
    # Tesseract is installed; off = such files fail as "no text layer". Pages whose mean word
    # confidence is below ocr_min_confidence are named in the ingest summary.
    ocr: Literal["auto", "off"] = "auto"
    ocr_languages: str = "eng"  # Tesseract codes joined by '+', e.g. "eng+deu"
    ocr_min_confidence: float = 60.0
    ocr_dpi: int = 300

    # --- models (local paths override the packaged defaults) ---------------------------------
    embed_model: Path | None = None
    query_prefix: str = ""
    reranker_model: Path | None = None
    # Embedding runtime (ragkb.weights.embedding_runtime_choice): auto = torch fp16 on CUDA when
    # torch sees a GPU, else the packaged model converted locally to OpenVINO (CPU), else torch;
    # openvino-int8 (~1.5x faster ingest, slightly weaker hybrid ranking) only when chosen.
    embed_backend: Literal["auto", "torch", "openvino", "openvino-int8", "onnx"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # --- retrieval ---------------------------------------------------------------------------
    top_k: int = 5
    # Fusion over 100-deep prefetches: chosen on SciFact's train split (eval/RESULTS.md, tuning).
    prefetch_k: int = 100
    rerank_candidates: int = 20
    # max: each list normalised as DBSF does, a passage scores its better list + 0.85 x the
    # other (ragkb.store.fusion); dbsf and rrf are the engine's own (eval/RESULTS.md §14).
    fusion: Literal["max", "rrf", "dbsf"] = "max"

    # --- generation --------------------------------------------------------------------------
    # auto: Ollama, else a configured OpenAI-compatible server, else extractive (never llamacpp).
    llm_backend: Literal["auto", "ollama", "openai", "extractive", "llamacpp", "none"] = "auto"
    ollama_url: str = "http://localhost:11434"
    llm_model: str = "llama3.2:3b"
    openai_url: str | None = None
    openai_api_key: SecretStr | None = None
    gguf_path: Path | None = None
    llm_timeout_s: float = 120.0
    max_answer_tokens: int = 400
    # Extractive answers (ragkb.extractive): "I don't know" when no sentence scores this much;
    # calibrated on PolicyQA dev to abstain on 90% of unanswerable questions (eval/RESULTS.md).
    extractive_min_score: float = 0.42
    # No model is asked when the best passage's cosine to the question (Passage.relevance) is
    # below this: nothing retrieved is about the question. Low on purpose: questions about a
    # document rather than its content score low ("When was the memo written?" 0.19 on the
    # sample memo); on PolicyQA it keeps every answerable question and refuses 17% (dev) of
    # unanswerable PubMedQA ones, 0.37 would refuse 96%. eval/RESULTS.md §11. 0 = off.
    min_relevance: float = 0.15

    # --- access control & audit --------------------------------------------------------------
    acl_default: Literal["public", "deny"] = "public"
    users_file: Path | None = None
    trusted_user_header: str | None = None
    audit_redact_questions: bool = False

    # --- limits and waiting ------------------------------------------------------------------
    # A question is a question, not a document: bounded at every entry point (CLI, UI, API).
    max_question_chars: int = 4000
    # How long a writer waits for the embedded store while another process holds it; a reader
    # (ask, status) waits `store_read_wait_s` and then says the base is busy.
    store_wait_s: float = 600.0
    store_read_wait_s: float = 10.0
    # Each file is parsed in a worker process under these limits, so a zip bomb or a parser
    # stuck on one file costs that file, never the run.
    parse_timeout_s: float = 300.0
    parse_memory_mb: int = 4096

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = config_path()
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml_file is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml_file),)
        return sources

    # Derived locations under RAGKB_HOME: one place decides the on-disk layout.
    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    @property
    def audit_log_path(self) -> Path:
        return self.home / "audit.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.home / "ingest.lock"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def manifest_path(self, collection: str | None = None) -> Path:
        return self.home / f"manifest-{collection or self.collection}.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests and the CLI build their own Settings when they need others."""
    return Settings()
