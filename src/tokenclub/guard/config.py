"""Guard settings from `TOKENCLUB_GUARD_*` environment variables (and `.env`), with safe defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenclub.guard.detection.accumulate import Budget
from tokenclub.guard.detection.coverage import Limits
from tokenclub.guard.detection.views import BATCH, BATCH_LIMIT
from tokenclub.guard.indexing.index import (
    COMMON_BITS,
    COMMON_DOCS,
    DEFAULT_CAPACITY,
    DEFAULT_HITS,
    DEFAULT_WIDTH,
    Commonness,
    IndexParams,
    IndexShape,
)
from tokenclub.settings import settings_error


class GuardSettings(BaseSettings):
    """What an operator tunes; the index shape (leak length, bits) applies at the next rebuild."""

    model_config = SettingsConfigDict(env_prefix="TOKENCLUB_GUARD_", env_file=".env", extra="ignore")

    leak_length: int = Field(
        default=50,
        ge=DEFAULT_WIDTH + DEFAULT_HITS - 1,  # a chain of hits over a gram of 26 letters
        description="Copied guard letters the index always finds (Hangul in jamo): a leak once they also "
        "hold LEAK_LETTERS.",
    )
    leak_letters: int = Field(
        default=50,
        ge=0,
        description="NFKC letters (a Hangul syllable one) a copied run must also hold to be a leak, "
        "the leak definition's count; 0: the guard letters of the leak length alone decide. Replies "
        "under the strict threshold keep the guard letters' verdict.",
    )
    policy: Literal["block", "redact"] = Field(
        default="block", description="Replies with a leak: end with content_filter, or cut the leak out."
    )
    prompt_policy: Literal["refuse", "strict"] = Field(
        default="strict",
        description="Extraction attempts: refuse the request, or answer under the stricter threshold.",
    )
    stream_batch: int = Field(
        default=BATCH_LIMIT,
        ge=BATCH,
        description="Reply characters a stream's batch grows to (from 32): larger scans a long stream "
        "at less cost and holds more of it back.",
    )
    member_bits: float = Field(
        default=8.0,
        ge=6,  # below, chance hits chain into a leak in more than 1 reply of 300 tokens in 1,000
        le=32,
        description="Membership filter bits per indexed gram.",
    )
    partner_bits: float = Field(
        default=0.0,
        ge=0,
        description="Attribution filter bits per indexed gram; 0 keeps none and names a copy's "
        "partners from the gram→document table, exactly.",
    )
    initial_capacity: int = Field(
        default=DEFAULT_CAPACITY,
        ge=1024,
        description="Grams a fresh index holds before it regrows to fit its corpus.",
    )

    common_documents: int = Field(
        default=COMMON_DOCS,
        ge=2,
        description="Contributed documents that must hold a gram for it to count as common, not secret.",
    )
    common_bits: float = Field(
        default=COMMON_BITS, gt=0, description="Document-frequency sketch bits per indexed gram."
    )

    own_text: bool = Field(
        default=True,
        description="A partner's own keys may receive that partner's own text (its archive, quoted).",
    )

    accumulate_soft: int = Field(
        default=800,
        ge=0,
        description="Letters one customer (all its keys) may copy from one partner per window in runs "
        "below the leak length before its replies are scanned under the strict threshold; 0 turns "
        "accumulation and the joining of pieces across replies off.",
    )
    accumulate_hard: int = Field(
        default=1600, ge=1, description="Accumulated letters past which the customer's requests are refused."
    )
    accumulate_window_s: int = Field(default=3600, ge=12, description="The accumulation window (seconds).")
    accumulate_min_hits: int = Field(
        default=2, ge=2, description="Gram hits in a chain for it to count (2: runs of 31+ letters)."
    )
    accumulate_allowance: float = Field(
        default=0.1, ge=0, lt=1, description="Copied letters forgiven per letter of each reply."
    )

    coverage_customer: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Share of any contributed document's guard letters one customer (all its keys) may "
        "be sent, in pieces of any size; past it, replies carrying more of that document are blocked, "
        "and from the `coverage_strikes`-th such block its requests are refused; 0 turns coverage off.",
    )
    coverage_document: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="Share of a document all customers together may be sent: past it, once more than one "
        "customer's own, the document is capped (every reply carrying its grams is blocked, for every "
        "customer; customers holding counted pieces of it are refused) and an operator alert is recorded.",
    )
    coverage_join_letters: int = Field(
        default=50,
        ge=0,
        description="NFKC letters a run joined from several replies' pieces of a document must also hold "
        "to be blocked as a leak; 0: the guard letters of the leak length, as a collection bound.",
    )
    coverage_join_share: float = Field(
        default=0.03,
        ge=0,
        le=1,
        description="With COVERAGE_JOIN_LETTERS: the share of a document's guard letters at which a run of "
        "it, joined from several replies or one reply's own, is blocked all the same (0: none).",
    )
    coverage_window_s: int = Field(
        default=30 * 86400, ge=1, description="How long sent pieces count toward coverage (seconds)."
    )
    coverage_floor: int = Field(
        default=50,
        ge=0,
        description="Letters of one run (the longest) of a document that never count: one stock phrase an "
        "honest reply shares with it; a second place counts from its first letter.",
    )
    coverage_strikes: int = Field(
        default=3,
        ge=1,
        description="Replies blocked for more of a document the customer is at its limit of, within the "
        "coverage window, from which the customer's requests are refused.",
    )
    coverage_reserve: int = Field(
        default=49,
        ge=0,
        description="Letters each request in flight reserves of its customer's coverage at admission "
        "(of every document it holds counted letters of).",
    )

    @model_validator(mode="after")
    def _soft_within_hard(self) -> GuardSettings:
        if self.accumulate_soft > self.accumulate_hard:
            raise ValueError(
                f"TOKENCLUB_GUARD_ACCUMULATE_SOFT ({self.accumulate_soft}) must not exceed "
                f"TOKENCLUB_GUARD_ACCUMULATE_HARD ({self.accumulate_hard})"
            )
        if self.coverage_customer > self.coverage_document:
            raise ValueError(
                f"TOKENCLUB_GUARD_COVERAGE_CUSTOMER ({self.coverage_customer}) must not exceed "
                f"TOKENCLUB_GUARD_COVERAGE_DOCUMENT ({self.coverage_document})"
            )
        return self

    def limits(self) -> Limits | None:
        """The coverage limits, or None when coverage is turned off."""
        if self.coverage_customer == 0:
            return None
        return Limits(
            self.coverage_customer,
            self.coverage_document,
            self.coverage_window_s,
            self.coverage_reserve,
            floor=self.coverage_floor,
            strikes=self.coverage_strikes,
        )

    def budget(self) -> Budget | None:
        """The accumulation budget, or None when it is turned off."""
        if self.accumulate_soft == 0:
            return None
        return Budget(
            self.accumulate_soft,
            self.accumulate_hard,
            self.accumulate_window_s,
            self.accumulate_min_hits,
            self.accumulate_allowance,
        )

    def index_params(self) -> IndexParams:
        return IndexParams.for_leak_length(
            self.leak_length, member_bits=self.member_bits, partner_bits=self.partner_bits
        )

    def commonness(self) -> Commonness:
        return Commonness(self.common_bits, self.common_documents)

    def index_shape(self) -> IndexShape:
        return IndexShape(self.index_params(), self.initial_capacity, self.commonness())


def guard_settings() -> GuardSettings:
    """The guard's settings as read now; a bad variable is an `InvalidInputError` naming it and
    what is allowed, so the CLI prints one line instead of a traceback."""
    try:
        return GuardSettings()
    except ValidationError as exc:
        raise settings_error(exc, GuardSettings, "TOKENCLUB_GUARD_") from None
