"""The chart of accounts: which accounts exist, their unit, normal side and overdraft guard.

Amounts are signed with debits positive; every transaction sums to zero per unit. A
credit-normal account reports the negated sum, so every reported balance reads as a plain
positive quantity (tokens left, KRW owed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    TOKEN = "token"
    KRW = "krw"
    MICRO_KRW = "ukrw"
    """Millionths of a won: list prices are KRW per million tokens, so a request's exact cost
    is a whole number of micro-won; receivable KRW is the floor of the running micro-won total."""


class Normal(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class AccountKind:
    """A kind of account; `guarded` accounts may never report a balance below zero."""

    name: str
    unit: Unit
    normal: Normal
    guarded: bool = False


FREE_TOKENS_GRANTED = AccountKind("free_tokens_granted", Unit.TOKEN, Normal.DEBIT)
FREE_ALLOWANCE = AccountKind("free_allowance", Unit.TOKEN, Normal.CREDIT, guarded=True)
FREE_TOKENS_USED = AccountKind("free_tokens_used", Unit.TOKEN, Normal.CREDIT)
PAID_TOKENS = AccountKind("paid_tokens", Unit.TOKEN, Normal.DEBIT)
RECEIVABLE_KRW = AccountKind("receivable_krw", Unit.KRW, Normal.DEBIT)
PAYABLE_KRW = AccountKind("payable_krw", Unit.KRW, Normal.CREDIT)
FREE_ALLOWANCE_HELD = AccountKind("free_allowance_held", Unit.TOKEN, Normal.CREDIT, guarded=True)
CREDIT_LINE_KRW = AccountKind("credit_line_krw", Unit.KRW, Normal.CREDIT, guarded=True)
CREDIT_LINE_HELD_KRW = AccountKind("credit_line_held_krw", Unit.KRW, Normal.CREDIT, guarded=True)
USAGE_MICRO_KRW = AccountKind("usage_micro_krw", Unit.MICRO_KRW, Normal.DEBIT)

CUSTOMER_KINDS: tuple[AccountKind, ...] = (
    FREE_TOKENS_GRANTED,
    FREE_ALLOWANCE,
    FREE_TOKENS_USED,
    PAID_TOKENS,
    RECEIVABLE_KRW,
    PAYABLE_KRW,
    FREE_ALLOWANCE_HELD,
    CREDIT_LINE_KRW,
    CREDIT_LINE_HELD_KRW,
    USAGE_MICRO_KRW,
)

PAID_TOKENS_SOLD = AccountKind("paid_tokens_sold", Unit.TOKEN, Normal.CREDIT)
API_REVENUE_KRW = AccountKind("api_revenue_krw", Unit.KRW, Normal.CREDIT)
PROFIT_SHARE_EXPENSE_KRW = AccountKind("profit_share_expense_krw", Unit.KRW, Normal.DEBIT)
CREDIT_LINES_ISSUED_KRW = AccountKind("credit_lines_issued_krw", Unit.KRW, Normal.DEBIT)
USAGE_MICRO_KRW_BILLED = AccountKind("usage_micro_krw_billed", Unit.MICRO_KRW, Normal.CREDIT)

SYSTEM_KINDS: tuple[AccountKind, ...] = (
    PAID_TOKENS_SOLD,
    API_REVENUE_KRW,
    PROFIT_SHARE_EXPENSE_KRW,
    CREDIT_LINES_ISSUED_KRW,
    USAGE_MICRO_KRW_BILLED,
)

KINDS: dict[str, AccountKind] = {kind.name: kind for kind in CUSTOMER_KINDS + SYSTEM_KINDS}


def customer_account(customer_id: int, kind: AccountKind) -> str:
    """The code of a customer's account of the given kind."""
    return f"customer:{customer_id}:{kind.name}"


def system_account(kind: AccountKind) -> str:
    return f"system:{kind.name}"


def reported(kind_normal: str, raw: int) -> int:
    """The balance as people read it, from the signed (debit-positive) sum."""
    return raw if kind_normal == Normal.DEBIT else -raw
