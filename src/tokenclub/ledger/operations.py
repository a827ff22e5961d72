"""The business postings built on the ledger: free tokens, credit lines and payouts."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tokenclub.errors import InvalidInputError
from tokenclub.ledger.chart import (
    CREDIT_LINE_KRW,
    CREDIT_LINES_ISSUED_KRW,
    FREE_ALLOWANCE,
    FREE_TOKENS_GRANTED,
    FREE_TOKENS_USED,
    PROFIT_SHARE_EXPENSE_KRW,
    customer_account,
    system_account,
)
from tokenclub.ledger.posting import Leg, Posting, Transfer, post, post_many

PAYOUT_KIND = "profit_share"


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


def grant_credit_line(session: Session, customer_id: int, krw: int, key: str) -> Posting:
    """Let a customer spend `krw` more at list price (the operator's spending limit)."""
    if krw <= 0:
        raise InvalidInputError(f"credit line amount must be positive, got {krw}")
    return post(
        session,
        key,
        "grant_credit_line",
        [
            Leg(system_account(CREDIT_LINES_ISSUED_KRW), krw),
            Leg(customer_account(customer_id, CREDIT_LINE_KRW), -krw),
        ],
    )


def post_payouts(session: Session, payouts: dict[str, tuple[str, int]], memo: str) -> list[int]:
    """Profit-share payouts in bulk: key → (payable account code, KRW), each one transaction
    debiting the profit-share expense and crediting the partner's payable. Every key must be
    new (`post_many`)."""
    expense = system_account(PROFIT_SHARE_EXPENSE_KRW)
    for key, (_, krw) in payouts.items():
        if krw <= 0:
            raise InvalidInputError(f"payout {key}: amount must be positive, got {krw}")
    return post_many(
        session,
        [
            Transfer(key, PAYOUT_KIND, (Leg(expense, krw), Leg(payable, -krw)), memo)
            for key, (payable, krw) in payouts.items()
        ],
    )
