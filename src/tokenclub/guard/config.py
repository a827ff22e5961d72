"""Guard settings from `TOKENCLUB_GUARD_*` environment variables (and `.env`), with safe defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenclub.guard.index import DEFAULT_CAPACITY, IndexParams


class GuardSettings(BaseSettings):
    """What an operator tunes; the index shape (leak length, bits) applies at the next rebuild."""

    model_config = SettingsConfigDict(env_prefix="TOKENCLUB_GUARD_", env_file=".env", extra="ignore")

    leak_length: int = Field(
        default=50, ge=20, description="Copied guard letters that always count as a leak (Hangul in jamo)."
    )
    policy: Literal["block", "redact"] = Field(
        default="block", description="Replies with a leak: end with content_filter, or cut the leak out."
    )
    prompt_policy: Literal["refuse", "strict"] = Field(
        default="strict",
        description="Extraction attempts: refuse the request, or answer under the stricter threshold.",
    )
    member_bits: float = Field(default=8.0, gt=0, description="Membership filter bits per indexed gram.")
    partner_bits: float = Field(default=4.0, ge=1, description="Attribution filter bits per indexed gram.")
    initial_capacity: int = Field(
        default=DEFAULT_CAPACITY,
        ge=1024,
        description="Grams the first segment holds before a larger one opens.",
    )

    def index_params(self) -> IndexParams:
        return IndexParams.for_leak_length(
            self.leak_length, member_bits=self.member_bits, partner_bits=self.partner_bits
        )
