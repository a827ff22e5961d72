"""Settings from `TOKENCLUB_*` environment variables, an optional `.env` file, and safe defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenclub.errors import InvalidInputError

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Everything an operator may tune; every field is `TOKENCLUB_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TOKENCLUB_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".tokenclub"), description="Data folder: database, raw store, corpus.")
    store_url: str | None = Field(
        default=None,
        description="Where the raw and corpus stores live: a folder or an fsspec URL (s3://bucket/tc); "
        "default the home.",
    )
    encrypt_at_rest: bool = Field(
        default=True,
        description="Seal raw uploads and corpus parts with AES-256-GCM under per-object data keys "
        "(see docs/ingest.md).",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Master key, 32 bytes in base64; default the key file in the home.",
    )
    master_key_file: Path | None = Field(
        default=None, description="Key file (created 0600 by `tokenclub init`); default <home>/master.key."
    )
    kms: str | None = Field(
        default=None,
        description="External KMS as 'package.module:factory' returning a KeyWrapper; "
        "it wins over the keys above.",
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
    max_bad_byte_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of undecodable bytes a Korean text file may have and still be read, "
        "each replaced by U+FFFD and counted in the receipt (see docs/ingest.md).",
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
    operator_token: str | None = Field(
        default=None,
        min_length=16,
        description="When set, /metrics, /docs, /openapi.json and /healthz details need it as a bearer "
        "token; at least 16 characters.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body the gateway reads (413 above)."
    )
    log_level: LogLevel = Field(
        default="info", description="Gateway log level; at info every request writes one access-log line."
    )
    export_shard_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Text bytes (UTF-8) per export shard before a new one starts.",
    )

    upload_max_bytes: int = Field(
        default=8 * 1024**3, ge=1, description="Largest upload through the data API or the portal, in bytes."
    )
    upload_part_max_bytes: int = Field(
        default=64 * 1024**2, ge=1, description="Largest single part of a chunked upload, in bytes."
    )
    worker_lease_s: int = Field(
        default=300,
        ge=5,
        description="Seconds an ingest worker holds a job without renewing; then another may resume it.",
    )
    session_ttl_s: int = Field(default=8 * 3600, ge=60, description="Seconds a portal login lasts.")
    cookie_secure: bool = Field(
        default=True,
        description="Mark the portal session cookie Secure (HTTPS only; browsers exempt localhost).",
    )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file inside the home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'tokenclub.db').resolve()}"


BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="))
KINDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", Path: "a path"}


def _kind(info: FieldInfo) -> Any:
    """A field's type, without the `| None` of an optional one."""
    kind = info.annotation
    if get_origin(kind) in (Union, UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    return kind


def _allowed(info: FieldInfo) -> str:
    """The values a field accepts, in words: its type and bounds."""
    kind = _kind(info)
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(kind))
    bounds = [
        f"{word} {getattr(meta, attr)}"
        for meta in info.metadata
        for attr, word in BOUNDS
        if getattr(meta, attr, None) is not None
    ]
    return KINDS.get(kind, "text") + (" " + " and ".join(bounds) if bounds else "")


def settings_error(exc: ValidationError, model: type[BaseSettings], prefix: str) -> InvalidInputError:
    """One line naming each bad variable and what is allowed; the value given is repeated only
    for numbers and choices (a token or URL may be a secret)."""
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        info = model.model_fields.get(name)
        if info is None:
            parts.append(f"{prefix}{name.upper()}: {error['msg']}")
            continue
        given = error.get("input")
        plain = _kind(info) in KINDS or get_origin(_kind(info)) is Literal
        shown = f"={given}" if plain and isinstance(given, str) and len(given) <= 40 else ""
        parts.append(f"{prefix}{name.upper()}{shown} is not allowed: use {_allowed(info)}")
    return InvalidInputError("; ".join(parts))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests clear the cache after changing the environment);
    a bad value is an `InvalidInputError` naming the variable, so the CLI prints one line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc, Settings, "TOKENCLUB_") from None
