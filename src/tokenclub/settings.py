"""Settings from `TOKENCLUB_*` environment variables, an optional `.env` file, and safe defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator may tune; every field is `TOKENCLUB_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TOKENCLUB_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".tokenclub"), description="Data folder: database, raw store, corpus.")
    store_url: str | None = Field(
        default=None,
        description="Where the raw and corpus stores live: a folder or an fsspec URL (s3://bucket/tc); "
        "default the home.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default a SQLite file in the home (WAL mode)."
    )
    member_threshold_words: int = Field(
        default=100_000_000, ge=0, description="Accepted Korean words (eojeol) that make a partner a member."
    )
    credit_ratio: float = Field(
        default=1.0, ge=0, description="Free API tokens granted per credited corpus token."
    )

    tokenizer_path: Path | None = Field(
        default=None,
        description="tokenizer.json that counts credited tokens; default the one shipped with tokenclub.",
    )
    hangul_threshold: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Least share of Hangul among letters for a Korean document (see docs/quality.md).",
    )
    batch_size: int = Field(default=256, ge=1, description="Documents per pipeline batch (and checkpoint).")
    workers: int | None = Field(
        default=None, ge=1, description="Pipeline worker processes; default one per core."
    )

    price_input_krw_per_mtok: int = Field(
        default=2_000, ge=0, description="List price, KRW per 1M input tokens."
    )
    price_output_krw_per_mtok: int = Field(
        default=8_000, ge=0, description="List price, KRW per 1M output tokens."
    )
    pool_rate: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Share of a period's API profit that goes into the partners' pool.",
    )
    pool_basis: Literal["profit", "revenue"] = Field(
        default="profit",
        description="What the pool rate applies to: profit (revenue − costs) or revenue (costs not "
        "deducted); frozen into each period when it closes.",
    )
    min_payout_krw: int = Field(
        default=1_000, ge=0, description="Smallest payout; smaller amounts carry forward to the next period."
    )
    upstream_url: str | None = Field(
        default=None,
        description="OpenAI-compatible upstream base URL (ending in /v1); default the embedded llama.cpp.",
    )
    model_name: str = Field(
        default="smollm2-135m-instruct", description="Name clients use for the default model."
    )
    models: str = Field(
        default="",
        description='Extra models as JSON: {"name": {"url": "http://host/v1", "model": "upstream-name"}}.',
    )
    default_max_tokens: int = Field(default=512, ge=1, description="max_tokens when a request gives none.")
    hold_ttl_s: int = Field(default=900, ge=10, description="Seconds before an unsettled hold is released.")
    upstream_timeout_s: float = Field(
        default=120.0, gt=0, description="Upstream request timeout (504 after)."
    )
    rate_limit_rpm: int = Field(default=600, ge=1, description="Requests per minute per API key.")
    rate_limit_tpm: int = Field(default=1_000_000, ge=1, description="Tokens per minute per API key.")
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for rate limits shared by gateway replicas; default the database.",
    )
    trainers: str = Field(
        default="",
        description="Comma-separated names that may create and download training exports (trainer role).",
    )
    operators: str = Field(
        default="",
        description="Comma-separated operator names; operators may also create and download exports.",
    )
    export_shard_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Text bytes (UTF-8) per export shard before a new one starts.",
    )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file inside the home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'tokenclub.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests clear the cache after changing the environment)."""
    return Settings()
