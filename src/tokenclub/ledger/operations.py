"""The business postings built on the ledger: granting and spending free tokens."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tokenclub.errors import InvalidInputError
from tokenclub.ledger.chart import FREE_ALLOWANCE, FREE_TOKENS_GRANTED, FREE_TOKENS_USED, customer_account
from tokenclub.ledger.posting import Leg, Posting, post


def _positive(tokens: int) -> None:
    if tokens <= 0:
        raise InvalidInputError(f"token amount must be positive, got {tokens}")


def grant_free_tokens(session: Session, customer_id: int, tokens: int, key: str, memo: str = "") -> Posting:
    """Add to a customer's free allowance (for a partner: credited tokens × credit ratio)."""
    _positive(tokens)
    return post(
        session,
        key,
        "grant_free_tokens",
        [
            Leg(customer_account(customer_id, FREE_TOKENS_GRANTED), tokens),
            Leg(customer_account(customer_id, FREE_ALLOWANCE), -tokens),
        ],
        memo,
    )


def spend_free_tokens(session: Session, customer_id: int, tokens: int, key: str, memo: str = "") -> Posting:
    """Use free allowance; refused atomically when the allowance is smaller than `tokens`."""
    _positive(tokens)
    return post(
        session,
        key,
        "spend_free_tokens",
        [
            Leg(customer_account(customer_id, FREE_ALLOWANCE), tokens),
            Leg(customer_account(customer_id, FREE_TOKENS_USED), -tokens),
        ],
        memo,
    )
