"""All configuration in one place: defaults < ragkb.toml < RAGKB_* environment variables.

The toml file is looked up at RAGKB_CONFIG, else ./ragkb.toml, so the nightly job and the UI
read the same file as an interactive shell without any extra flags.
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
    qdrant_api_key: SecretStr | None = None
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
    parse_workers: int = 1
    pdf_max_pages: int = 2000

    # --- models (local paths override the packaged defaults) ---------------------------------
    embed_model: Path | None = None
    query_prefix: str = ""
    reranker_model: Path | None = None

    # --- retrieval ---------------------------------------------------------------------------
    top_k: int = 5
    # DBSF over 100-deep prefetches: chosen on SciFact's train split (eval/RESULTS.md, tuning).
    prefetch_k: int = 100
    rerank_candidates: int = 20
    fusion: Literal["rrf", "dbsf"] = "dbsf"

    # --- generation --------------------------------------------------------------------------
    llm_backend: Literal["auto", "ollama", "openai", "llamacpp", "none"] = "auto"
    ollama_url: str = "http://localhost:11434"
    llm_model: str = "llama3.2:3b"
    openai_url: str | None = None
    openai_api_key: SecretStr | None = None
    gguf_path: Path | None = None
    llm_timeout_s: float = 120.0
    max_answer_tokens: int = 400

    # --- access control & audit --------------------------------------------------------------
    acl_default: Literal["public", "deny"] = "public"
    users_file: Path | None = None
    trusted_user_header: str | None = None
    audit_redact_questions: bool = False

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
        toml_file = Path(os.environ.get("RAGKB_CONFIG", "ragkb.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

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
