"""Posting balanced, idempotent transactions and reading balances back.

Overdraft safety comes from a conditional UPDATE per guarded leg: the database re-checks the
guard against the committed row after taking its lock, so on PostgreSQL two racing debits
cannot both pass, and on SQLite writers are serialised by BEGIN IMMEDIATE.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from sqlalchemy import BindParameter, Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import LedgerAccount, LedgerEntry, LedgerTransaction
from tokenclub.db.types import utcnow
from tokenclub.errors import (
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidInputError,
    NotFoundError,
)
from tokenclub.ledger.chart import (
    CUSTOMER_KINDS,
    SYSTEM_KINDS,
    AccountKind,
    Normal,
    customer_account,
    reported,
    system_account,
)

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a transaction: a signed amount on an account code (debits positive)."""

    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Posting:
    """A written transaction; `created` is False when an idempotent replay returned it."""

    transaction_id: int
    idempotency_key: str
    kind: str
    legs: tuple[Leg, ...]
    created: bool


def posting_digest(kind: str, legs: Sequence[Leg]) -> str:
    """What an idempotency key is bound to: a replay must carry the same kind and legs."""
    canonical = json.dumps([kind, sorted((leg.account, leg.amount) for leg in legs)])
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validate(key: str, legs: Sequence[Leg]) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"idempotency key must be 1..{MAX_KEY_LENGTH} characters")
    if len(legs) < 2:
        raise InvalidInputError("a transaction needs at least two legs")
    seen: set[str] = set()
    for leg in legs:
        if isinstance(leg.amount, bool) or not isinstance(leg.amount, int) or leg.amount == 0:
            raise InvalidInputError(f"leg on {leg.account}: amount must be a non-zero integer")
        if leg.account in seen:
            raise InvalidInputError(f"account {leg.account} appears twice in one transaction")
        seen.add(leg.account)


def _existing(session: Session, key: str, digest: str) -> Posting | None:
    tx = session.scalar(select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key))
    if tx is None:
        return None
    if tx.digest != digest:
        raise IdempotencyConflictError(f"idempotency key {key!r} was already used for a different posting")
    rows = session.execute(
        select(LedgerAccount.code, LedgerEntry.amount)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.transaction_id == tx.id)
        .order_by(LedgerEntry.id)
    ).all()
    legs = tuple(Leg(code, amount) for code, amount in rows)
    return Posting(tx.id, key, tx.kind, legs, created=False)


@dataclass(frozen=True, slots=True)
class _Account:
    id: int
    code: str
    unit: str
    normal: str
    guarded: bool


def _apply_leg(session: Session, account: _Account, amount: int) -> None:
    stmt = update(LedgerAccount).where(LedgerAccount.id == account.id)
    decreases = (amount > 0) if account.normal == Normal.CREDIT else (amount < 0)
    if account.guarded and decreases:
        if account.normal == Normal.CREDIT:
            stmt = stmt.where(LedgerAccount.balance + amount <= 0)
        else:
            stmt = stmt.where(LedgerAccount.balance + amount >= 0)
    result = session.execute(
        stmt.values(balance=LedgerAccount.balance + amount).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InsufficientBalanceError(f"{account.code}: balance too low for {abs(amount)} {account.unit}")


def _accounts(session: Session, legs: Sequence[Leg]) -> dict[str, _Account]:
    rows = session.execute(
        select(
            LedgerAccount.id,
            LedgerAccount.code,
            LedgerAccount.unit,
            LedgerAccount.normal,
            LedgerAccount.guarded,
        ).where(LedgerAccount.code.in_([leg.account for leg in legs]))
    )
    found = {row.code: _Account(row.id, row.code, row.unit, row.normal, row.guarded) for row in rows}
    for leg in legs:
        if leg.account not in found:
            raise NotFoundError(f"ledger account {leg.account} does not exist")
    return found


def post(session: Session, key: str, kind: str, legs: Sequence[Leg], memo: str = "") -> Posting:
    """Write a balanced transaction once; replaying the same key returns the first posting.

    Runs inside a savepoint, so a refused debit leaves the caller's transaction untouched. The
    unique idempotency key is the replay check: the insert comes first and only a conflict
    looks the earlier posting up, which saves a query on every new posting.
    """
    _validate(key, legs)
    digest = posting_digest(kind, legs)
    accounts = _accounts(session, legs)
    per_unit: dict[str, int] = defaultdict(int)
    for leg in legs:
        per_unit[accounts[leg.account].unit] += leg.amount
    unbalanced = {unit: total for unit, total in per_unit.items() if total != 0}
    if unbalanced:
        raise InvalidInputError(f"transaction does not balance: {unbalanced}")
    try:
        with session.begin_nested():
            tx_id = session.execute(
                insert(LedgerTransaction)
                .values(idempotency_key=key, kind=kind, memo=memo, digest=digest, created_at=utcnow())
                .returning(LedgerTransaction.id)
            ).scalar_one()
            for leg in sorted(legs, key=lambda leg: accounts[leg.account].id):
                _apply_leg(session, accounts[leg.account], leg.amount)
            session.execute(
                insert(LedgerEntry),
                [
                    {"transaction_id": tx_id, "account_id": accounts[leg.account].id, "amount": leg.amount}
                    for leg in legs
                ],
            )
    except IntegrityError:
        found = _existing(session, key, digest)
        if found is None:
            raise
        return found
    return Posting(tx_id, key, kind, tuple(legs), created=True)


@dataclass(frozen=True, slots=True)
class LockedAccount:
    """An account row read under its lock, so its balance cannot move until the commit."""

    id: int
    code: str
    unit: str
    normal: str
    guarded: bool
    balance: int

    def reported(self) -> int:
        return reported(self.normal, self.balance)


_ACCOUNTS_TABLE = cast(Table, LedgerAccount.__table__)


@lru_cache(maxsize=32)
def _lock_statement(count: int) -> Prebuilt:
    """Lock and read `count` accounts by code; one statement per count (a hot path locks 2 to
    12), with plain parameters, so SQLAlchemy compiles each once (an expanding IN list would be
    re-rendered on every execution)."""
    codes: list[BindParameter[str]] = [bindparam(f"code_{i}") for i in range(count)]
    return Prebuilt(
        select(
            _ACCOUNTS_TABLE.c.id,
            _ACCOUNTS_TABLE.c.code,
            _ACCOUNTS_TABLE.c.unit,
            _ACCOUNTS_TABLE.c.normal,
            _ACCOUNTS_TABLE.c.guarded,
            _ACCOUNTS_TABLE.c.balance,
        )
        .where(_ACCOUNTS_TABLE.c.code.in_(codes))
        .order_by(_ACCOUNTS_TABLE.c.id)
        .with_for_update()
    )


_ADD_TO_BALANCE = Prebuilt(
    update(_ACCOUNTS_TABLE)
    .where(_ACCOUNTS_TABLE.c.id == bindparam("account_id"))
    .values(balance=_ACCOUNTS_TABLE.c.balance + bindparam("amount"))
)
_INSERT_TRANSACTION = Prebuilt(
    insert(cast(Table, LedgerTransaction.__table__)).returning(cast(Table, LedgerTransaction.__table__).c.id)
)
_INSERT_ENTRIES = Prebuilt(insert(cast(Table, LedgerEntry.__table__)))


def lock_accounts(conn: Connection, codes: Iterable[str]) -> dict[str, LockedAccount]:
    """Lock the named accounts in id order (the same order `post` writes in, so no deadlock
    between them) and read their balances. PostgreSQL locks the rows (FOR UPDATE); SQLite
    transactions here start with BEGIN IMMEDIATE and already hold the database's write lock."""
    wanted = sorted(set(codes))
    params = {f"code_{i}": code for i, code in enumerate(wanted)}
    found = {
        code: LockedAccount(account_id, code, unit, normal, bool(guarded), balance)
        for account_id, code, unit, normal, guarded, balance in _lock_statement(len(wanted)).run(conn, params)
    }
    for code in wanted:
        if code not in found:
            raise NotFoundError(f"ledger account {code} does not exist")
    return found


def post_locked(
    conn: Connection,
    accounts: dict[str, LockedAccount],
    key: str,
    kind: str,
    legs: Sequence[Leg],
    memo: str = "",
) -> int:
    """`post` for a hot path whose accounts were locked with `lock_accounts`; the transaction id.

    The overdraft guards are checked against the locked balances before anything is written,
    so a refusal writes nothing and needs no savepoint, and all legs go in one executemany.
    The unique idempotency key still refuses a second posting under the same key (an
    IntegrityError that aborts the caller's transaction); callers keep their own once-only
    state (a hold's status), so a replay never reaches it.
    """
    _validate(key, legs)
    per_unit: dict[str, int] = defaultdict(int)
    for leg in legs:
        account = accounts.get(leg.account)
        if account is None:
            raise NotFoundError(f"ledger account {leg.account} is not locked for this posting")
        per_unit[account.unit] += leg.amount
        after = account.balance + leg.amount
        if account.guarded and (after > 0 if account.normal == Normal.CREDIT else after < 0):
            raise InsufficientBalanceError(
                f"{account.code}: balance too low for {abs(leg.amount)} {account.unit}"
            )
    unbalanced = {unit: total for unit, total in per_unit.items() if total != 0}
    if unbalanced:
        raise InvalidInputError(f"transaction does not balance: {unbalanced}")
    ordered = sorted(legs, key=lambda leg: accounts[leg.account].id)
    _ADD_TO_BALANCE.run(
        conn, [{"account_id": accounts[leg.account].id, "amount": leg.amount} for leg in ordered]
    )
    tx_id: int = _INSERT_TRANSACTION.run(
        conn,
        {
            "idempotency_key": key,
            "kind": kind,
            "memo": memo,
            "digest": posting_digest(kind, legs),
            "created_at": utcnow(),
        },
    )[0][0]
    _INSERT_ENTRIES.run(
        conn,
        [
            {"transaction_id": tx_id, "account_id": accounts[leg.account].id, "amount": leg.amount}
            for leg in ordered
        ],
    )
    return tx_id


def ensure_accounts(session: Session, codes_and_kinds: Iterable[tuple[str, int | None, AccountKind]]) -> None:
    """Create the named accounts that do not exist yet."""
    wanted = list(codes_and_kinds)
    have = set(
        session.scalars(select(LedgerAccount.code).where(LedgerAccount.code.in_([c for c, _, _ in wanted])))
    )
    for code, customer_id, kind in wanted:
        if code not in have:
            session.add(
                LedgerAccount(
                    code=code,
                    customer_id=customer_id,
                    kind=kind.name,
                    unit=kind.unit.value,
                    normal=kind.normal.value,
                    guarded=kind.guarded,
                    balance=0,
                )
            )
    session.flush()


def ensure_customer_accounts(session: Session, customer_id: int) -> None:
    ensure_accounts(session, ((customer_account(customer_id, k), customer_id, k) for k in CUSTOMER_KINDS))


def ensure_system_accounts(session: Session) -> None:
    ensure_accounts(session, ((system_account(k), None, k) for k in SYSTEM_KINDS))


def balance(session: Session, code: str) -> int:
    """The reported balance of one account, from its cached sum."""
    row = session.execute(
        select(LedgerAccount.normal, LedgerAccount.balance).where(LedgerAccount.code == code)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"ledger account {code} does not exist")
    return reported(row.normal, row.balance)


def balances_by_kind(session: Session, customer_id: int) -> dict[str, int]:
    """Every reported balance of a customer, keyed by account kind."""
    rows = session.execute(
        select(LedgerAccount.kind, LedgerAccount.normal, LedgerAccount.balance).where(
            LedgerAccount.customer_id == customer_id
        )
    ).all()
    return {row.kind: reported(row.normal, row.balance) for row in rows}


def audit(session: Session) -> list[str]:
    """Problems found: cached balances that differ from entry sums, or unbalanced transactions."""
    problems: list[str] = []
    sums = {
        account_id: int(total)
        for account_id, total in session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.account_id)
        )
    }
    for account in session.scalars(select(LedgerAccount).order_by(LedgerAccount.id)):
        derived = sums.get(account.id, 0)
        if derived != account.balance:
            problems.append(f"{account.code}: cached {account.balance} != entries {derived}")
    unbalanced = session.execute(
        select(LedgerEntry.transaction_id, LedgerAccount.unit, func.sum(LedgerEntry.amount))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .group_by(LedgerEntry.transaction_id, LedgerAccount.unit)
        .having(func.sum(LedgerEntry.amount) != 0)
    ).all()
    problems.extend(f"transaction {tx_id}: {unit} legs sum to {total}" for tx_id, unit, total in unbalanced)
    return problems
