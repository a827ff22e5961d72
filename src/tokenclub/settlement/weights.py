"""Weight policies: how much of the pool each partner's data earns.

A policy turns the corpus into one non-negative integer per partner; the allocation sees
nothing else, so a new policy (data used in the period's training export, quality-weighted
tokens) is one more class here and no change to the maths. Its `name` is frozen into every
closed period so a statement always says which policy split its pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tokenclub.db.schema import CorpusDocument, Partner


@dataclass(frozen=True, slots=True)
class Bounds:
    """The UTC range [starts_at, ends_at) being settled."""

    starts_at: datetime
    ends_at: datetime


class WeightPolicy(Protocol):
    @property
    def name(self) -> str: ...

    def weights(self, session: Session, bounds: Bounds) -> dict[int, int]:
        """Partner id → weight; partners absent or at zero get nothing from the pool."""
        ...


class CreditedTokens:
    """The default: each partner's credited tokens as of the period's end (all accepted
    documents stored before `ends_at`), the same count its free allowance was granted from. A
    partner that withdrew its data counts only in periods that end before its withdrawal."""

    name = "credited_tokens"

    def weights(self, session: Session, bounds: Bounds) -> dict[int, int]:
        rows = session.execute(
            select(CorpusDocument.partner_id, func.sum(CorpusDocument.tokens))
            .join(Partner, Partner.id == CorpusDocument.partner_id)
            .where(
                CorpusDocument.created_at < bounds.ends_at,
                or_(Partner.withdrawn_at.is_(None), Partner.withdrawn_at >= bounds.ends_at),
            )
            .group_by(CorpusDocument.partner_id)
        )
        return {partner: int(total) for partner, total in rows if total}
