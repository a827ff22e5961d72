"""Posting balanced, idempotent transactions and reading balances back.

One posting path (`post`, and `post_many` for a batch): the accounts are locked and read
first (FOR UPDATE on PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE), every
rule is checked on the locked balances, and only then is anything written. So two racing
debits cannot both pass, and a refusal writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import BindParameter, Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tokenclub.db.prebuilt import Prebuilt, driver_row
from tokenclub.db.schema import LedgerAccount, LedgerEntry, LedgerTransaction
from tokenclub.db.speculation import speculation_of
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


def _existing(conn: Connection, key: str, digest: str) -> Posting | None:
    found = _TRANSACTION_BY_KEY.run(conn, {"key": key})
    if not found:
        return None
    tx_id, kind, stored = found[0]
    if stored != digest:
        raise IdempotencyConflictError(f"idempotency key {key!r} was already used for a different posting")
    rows = _LEGS_OF.run(conn, {"transaction_id": tx_id})
    return Posting(tx_id, key, kind, tuple(Leg(code, amount) for code, amount in rows), created=False)


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

    def refuses(self, amount: int) -> bool:
        """Whether adding `amount` would take a guarded account below zero."""
        after = self.balance + amount
        return self.guarded and (after > 0 if self.normal == Normal.CREDIT else after < 0)


_ACCOUNTS_TABLE = cast(Table, LedgerAccount.__table__)
_TRANSACTIONS_TABLE = cast(Table, LedgerTransaction.__table__)
_ENTRIES_TABLE = cast(Table, LedgerEntry.__table__)


_LOCKED_COLUMNS = (
    _ACCOUNTS_TABLE.c.id,
    _ACCOUNTS_TABLE.c.code,
    _ACCOUNTS_TABLE.c.unit,
    _ACCOUNTS_TABLE.c.normal,
    _ACCOUNTS_TABLE.c.guarded,
    _ACCOUNTS_TABLE.c.balance,
)
"""What a locked account row carries (the fields of `LockedAccount`)."""


@lru_cache(maxsize=32)
def _lock_statement(count: int) -> Prebuilt:
    """Lock and read `count` accounts by code; one statement per count (a hot path locks 2 to
    12), with plain parameters, so SQLAlchemy compiles each once (an expanding IN list would be
    re-rendered on every execution)."""
    codes: list[BindParameter[str]] = [bindparam(f"code_{i}") for i in range(count)]
    return Prebuilt(
        select(*_LOCKED_COLUMNS)
        .where(_ACCOUNTS_TABLE.c.code.in_(codes))
        .order_by(_ACCOUNTS_TABLE.c.id)
        .with_for_update()
    )


_ADD_TO_BALANCE = Prebuilt(
    update(_ACCOUNTS_TABLE)
    .where(_ACCOUNTS_TABLE.c.id == bindparam("account_id"))
    .values(balance=_ACCOUNTS_TABLE.c.balance + bindparam("amount"))
)
_INSERT_ENTRIES = Prebuilt(insert(_ENTRIES_TABLE))
_TRANSACTION_BY_KEY = Prebuilt(
    select(_TRANSACTIONS_TABLE.c.id, _TRANSACTIONS_TABLE.c.kind, _TRANSACTIONS_TABLE.c.digest).where(
        _TRANSACTIONS_TABLE.c.idempotency_key == bindparam("key")
    )
)
_LEGS_OF = Prebuilt(
    select(_ACCOUNTS_TABLE.c.code, _ENTRIES_TABLE.c.amount)
    .join(_ACCOUNTS_TABLE, _ACCOUNTS_TABLE.c.id == _ENTRIES_TABLE.c.account_id)
    .where(_ENTRIES_TABLE.c.transaction_id == bindparam("transaction_id"))
    .order_by(_ENTRIES_TABLE.c.id)
)


def _insert_new_transaction(dialect_insert: Any) -> Prebuilt:
    """INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING id: a replayed key returns
    no row instead of raising, so no savepoint is needed around it."""
    stmt = dialect_insert(_TRANSACTIONS_TABLE).values(
        {name: bindparam(name) for name in ("idempotency_key", "kind", "memo", "digest", "created_at")}
    )
    return Prebuilt(
        stmt.on_conflict_do_nothing(index_elements=[_TRANSACTIONS_TABLE.c.idempotency_key]).returning(
            _TRANSACTIONS_TABLE.c.id
        )
    )


_INSERT_TRANSACTION = {
    "postgresql": _insert_new_transaction(pg_insert),
    "sqlite": _insert_new_transaction(sqlite_insert),
}


def connection_of(db: Session | Connection) -> Connection:
    """The connection of the caller's transaction; a session's pending ORM writes are flushed
    first, because the statements here run on the driver's cursor and bypass autoflush."""
    if isinstance(db, Connection):
        return db
    if db.new or db.dirty or db.deleted:
        db.flush()
    return db.connection()


_KEPT = "tokenclub.ledger.kept_locks"
"""Where `kept_locks` keeps a transaction's locked accounts: the connection's `info`."""


@contextmanager
def kept_locks(conn: Connection) -> Iterator[dict[str, LockedAccount]]:
    """Within it, an account the transaction on `conn` locked is not locked again: it stays
    locked until the transaction ends anyway, so `lock_accounts` answers it from here, its
    balance as the transaction's own postings moved it. A gateway batch's units lock one
    customer's accounts once instead of once each. The caller ends it before the transaction
    ends, and when it undoes part of the transaction (a savepoint rolled back) it puts back the
    accounts as they were before that part (`dict(kept)` then, and back with `clear`/`update`)."""
    kept: dict[str, LockedAccount] = {}
    conn.info[_KEPT] = kept
    try:
        yield kept
    finally:
        conn.info.pop(_KEPT, None)


def _moved(conn: Connection, accounts: Mapping[str, LockedAccount], legs: Sequence[Leg]) -> None:
    """Move the kept accounts' balances by a written posting's legs."""
    kept: dict[str, LockedAccount] | None = conn.info.get(_KEPT)
    if kept is None:
        return
    for leg in legs:
        a = kept.get(leg.account) or accounts[leg.account]
        kept[leg.account] = LockedAccount(a.id, a.code, a.unit, a.normal, a.guarded, a.balance + leg.amount)


def lock_accounts(db: Session | Connection, codes: Iterable[str]) -> dict[str, LockedAccount]:
    """Lock the named accounts in id order (the order every posting writes in, so postings do
    not deadlock) and read their balances. PostgreSQL locks the rows (FOR UPDATE); SQLite
    transactions here start with BEGIN IMMEDIATE and already hold the database's write lock.
    Within `kept_locks`, accounts the transaction locked already are not locked again (a
    customer's accounts belong to one gateway lane, and the system accounts are always locked
    together, so locking only the others keeps postings from deadlocking)."""
    conn = connection_of(db)
    wanted = sorted(set(codes))
    kept: dict[str, LockedAccount] | None = conn.info.get(_KEPT)
    missing = wanted if kept is None else [code for code in wanted if code not in kept]
    found: dict[str, LockedAccount] = {}
    if missing:
        params = {f"code_{i}": code for i, code in enumerate(missing)}
        found = {
            code: LockedAccount(account_id, code, unit, normal, bool(guarded), balance)
            for account_id, code, unit, normal, guarded, balance in _lock_statement(len(missing)).run(
                conn, params
            )
        }
        for code in missing:
            if code not in found:
                raise NotFoundError(f"ledger account {code} does not exist")
    if kept is None:
        return found
    kept.update(found)
    return {code: kept[code] for code in wanted}


def _check(accounts: Mapping[str, LockedAccount], legs: Sequence[Leg], spent: Mapping[int, int]) -> None:
    """Balance per unit and the overdraft guards, on locked balances plus what `spent` already
    moved in the same batch: a refusal is raised before anything is written."""
    per_unit: dict[str, int] = defaultdict(int)
    for leg in legs:
        account = accounts.get(leg.account)
        if account is None:
            raise NotFoundError(f"ledger account {leg.account} is not locked for this posting")
        per_unit[account.unit] += leg.amount
        if account.refuses(spent.get(account.id, 0) + leg.amount):
            raise InsufficientBalanceError(
                f"{account.code}: balance too low for {abs(leg.amount)} {account.unit}"
            )
    unbalanced = {unit: total for unit, total in per_unit.items() if total != 0}
    if unbalanced:
        raise InvalidInputError(f"transaction does not balance: {unbalanced}")


def post(
    db: Session | Connection,
    key: str,
    kind: str,
    legs: Sequence[Leg],
    memo: str = "",
    *,
    locked: Mapping[str, LockedAccount] | None = None,
) -> Posting:
    """Write a balanced transaction once; replaying the same key returns the first posting.

    The one way money or tokens move. Its accounts are locked and read (or were, by the
    caller: `locked`), the legs are validated and the overdraft guards checked on the locked
    balances, and only then is anything written, so a refusal leaves the caller's transaction
    untouched without a savepoint. The unique idempotency key decides a replay: the insert
    does nothing on a used key, and only then is the earlier posting looked up (one query
    saved on every new posting); a refused replay of a posting that was written is still a
    replay.
    """
    _validate(key, legs)
    conn = connection_of(db)
    accounts = locked if locked is not None else lock_accounts(conn, [leg.account for leg in legs])
    digest = posting_digest(kind, legs)
    try:
        _check(accounts, legs, {})
    except InsufficientBalanceError:
        found = _existing(conn, key, digest)
        if found is None:
            raise
        return found
    rows = _INSERT_TRANSACTION[conn.dialect.name].run(
        conn, {"idempotency_key": key, "kind": kind, "memo": memo, "digest": digest, "created_at": utcnow()}
    )
    if not rows:
        found = _existing(conn, key, digest)
        assert found is not None
        return found
    tx_id: int = rows[0][0]
    ordered = sorted(legs, key=lambda leg: accounts[leg.account].id)
    _ADD_TO_BALANCE.run(
        conn, [{"account_id": accounts[leg.account].id, "amount": leg.amount} for leg in ordered]
    )
    _INSERT_ENTRIES.run(
        conn,
        [
            {"transaction_id": tx_id, "account_id": accounts[leg.account].id, "amount": leg.amount}
            for leg in ordered
        ],
    )
    _moved(conn, accounts, legs)
    return Posting(tx_id, key, kind, tuple(legs), created=True)


_ONE_STATEMENT = """WITH {gate}tx AS (
    INSERT INTO ledger_transactions (idempotency_key, kind, memo, digest, created_at)
    SELECT %(tx_key)s, %(tx_kind)s, %(tx_memo)s, %(tx_digest)s, %(tx_created_at)s{gated}
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), legs AS (
    SELECT leg.account_id, leg.amount, leg.position
    FROM unnest(%(leg_accounts)s::bigint[], %(leg_amounts)s::bigint[]) WITH ORDINALITY
        AS leg(account_id, amount, position)
), moved AS (
    UPDATE ledger_accounts SET balance = ledger_accounts.balance + legs.amount
    FROM legs, tx WHERE ledger_accounts.id = legs.account_id
), entered AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount)
    SELECT tx.id, legs.account_id, legs.amount FROM tx, legs ORDER BY legs.position
){riders}
SELECT tx.id{returning} FROM tx"""


@dataclass(frozen=True, slots=True)
class Rider:
    """A write that goes with a new posting in its one statement (`post_in_one_statement`):
    `sql` is further WITH clauses (", name AS (INSERT … SELECT … FROM tx)") whose writes read
    the new transaction's id from `tx`, so they happen only if the posting does; `params` are
    their parameters (pyformat, names not starting with "tx_" or "leg_"); `returning`, values
    the statement also answers (", (SELECT id FROM name)")."""

    sql: str
    params: Mapping[str, Any]
    returning: str = ""

    def __add__(self, other: Rider) -> Rider:
        return Rider(self.sql + other.sql, {**self.params, **other.params}, self.returning + other.returning)


NO_RIDER = Rider("", {})
"""A posting's statement with nothing of the caller's in it."""


@dataclass(frozen=True, slots=True)
class Gate:
    """What a posting's one statement is written under: `sql` is WITH clauses read before the
    posting ("name AS (SELECT … FOR UPDATE), "), and the posting, with its riders, is written
    only if `source`, one of them, has a row; `params` as a rider's. It lets a caller that knows
    what a row should hold check it in the posting's own round trip instead of reading it first."""

    sql: str
    source: str
    params: Mapping[str, Any]


def _bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (the statement casts it): psycopg's list dumper
    scans every element of a list to choose the array's type, 4 % of the gateway's CPU."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def post_in_one_statement(
    conn: Connection,
    key: str,
    kind: str,
    legs: Sequence[Leg],
    locked: Mapping[str, LockedAccount],
    rider: Rider,
    memo: str = "",
    gate: Gate | None = None,
) -> tuple[Any, ...] | None:
    """`post` on accounts the caller locked, and the rider's writes, as one PostgreSQL
    statement (data-modifying WITH clauses): one round trip instead of one per table.

    The same rules as `post`, checked on the same locked balances before anything is sent.
    Returns the new transaction's id followed by the rider's `returning` values, or None when
    nothing was written because the posting is refused, its key was used or its `gate` found
    no row; the caller then takes `post`'s path, which answers those cases (a replay, or the
    refusal) exactly as always. In a batch run by `db.speculation` the statement is sent with
    the batch's others, and one that writes nothing undoes the batch instead."""
    _validate(key, legs)
    try:
        _check(locked, legs, {})
    except InsufficientBalanceError:
        return None
    ordered = sorted(legs, key=lambda leg: locked[leg.account].id)
    params: dict[str, Any] = {
        "tx_key": key,
        "tx_kind": kind,
        "tx_memo": memo,
        "tx_digest": posting_digest(kind, legs),
        "tx_created_at": utcnow(),
        "leg_accounts": _bigint_array(locked[leg.account].id for leg in ordered),
        "leg_amounts": _bigint_array(leg.amount for leg in ordered),
        **rider.params,
        **(gate.params if gate is not None else {}),
    }
    statement = _ONE_STATEMENT.format(
        gate=gate.sql if gate is not None else "",
        gated=f" FROM {gate.source}" if gate is not None else "",
        riders=rider.sql,
        returning=rider.returning,
    )
    speculation = speculation_of(conn)
    if speculation is not None:  # sent with the batch's others: its balances move before
        _moved(conn, locked, legs)
        found = speculation.row(statement, params)
        if found is None:
            speculation.miss()
        return found
    found = driver_row(conn, statement, params)
    if found is None:
        return None
    _moved(conn, locked, legs)
    return found


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transaction of a bulk posting."""

    key: str
    kind: str
    legs: tuple[Leg, ...]
    memo: str = ""


LOCK_CHUNK = 5_000
"""Accounts locked per statement in a bulk posting (PostgreSQL takes at most 65,535 parameters)."""


def _lock_many(conn: Connection, codes: set[str]) -> dict[str, LockedAccount]:
    found: dict[str, LockedAccount] = {}
    wanted = sorted(codes)
    for start in range(0, len(wanted), LOCK_CHUNK):
        rows = conn.execute(
            select(*_LOCKED_COLUMNS)
            .where(_ACCOUNTS_TABLE.c.code.in_(wanted[start : start + LOCK_CHUNK]))
            .order_by(_ACCOUNTS_TABLE.c.id)
            .with_for_update()
        )
        for account_id, code, unit, normal, guarded, balance in rows:
            found[code] = LockedAccount(account_id, code, unit, normal, bool(guarded), balance)
    missing = [code for code in wanted if code not in found]
    if missing:
        raise NotFoundError(f"ledger accounts do not exist: {', '.join(missing[:5])}")
    return found


def _used_keys(conn: Connection, keys: Sequence[str]) -> list[str]:
    used: list[str] = []
    for start in range(0, len(keys), LOCK_CHUNK):
        chunk = keys[start : start + LOCK_CHUNK]
        used.extend(
            conn.execute(
                select(_TRANSACTIONS_TABLE.c.idempotency_key).where(
                    _TRANSACTIONS_TABLE.c.idempotency_key.in_(chunk)
                )
            ).scalars()
        )
    return sorted(used)


def post_many(session: Session, transfers: Sequence[Transfer]) -> list[int]:
    """Write many new transactions in a fixed number of statements (a period's payouts).

    Every transfer is validated and guarded exactly as `post` does it, against the locked
    balances plus the batch's own earlier legs, and every key must be new (a used one refuses
    the whole batch, `IdempotencyConflictError`), before anything is written. A key written by
    a concurrent transaction between that check and the insert still fails the insert (the
    database's unique key), and the caller's transaction with it. Returns the transaction ids
    in the order of `transfers`.
    """
    if not transfers:
        return []
    conn = connection_of(session)
    keys = [transfer.key for transfer in transfers]
    if len(set(keys)) != len(keys):
        raise InvalidInputError("a bulk posting repeats an idempotency key")
    accounts = _lock_many(conn, {leg.account for transfer in transfers for leg in transfer.legs})
    moved: dict[int, int] = defaultdict(int)
    for transfer in transfers:
        _validate(transfer.key, transfer.legs)
        _check(accounts, transfer.legs, moved)
        for leg in transfer.legs:
            moved[accounts[leg.account].id] += leg.amount
    used = _used_keys(conn, keys)
    if used:
        raise IdempotencyConflictError(f"keys of this bulk posting were already used: {', '.join(used[:5])}")
    now = utcnow()
    # Core executemany without RETURNING (one statement per row on SQLite): the new ids are
    # read back by key, above the highest id there was before.
    before = conn.execute(select(func.max(_TRANSACTIONS_TABLE.c.id))).scalar() or 0
    conn.execute(
        insert(_TRANSACTIONS_TABLE),
        [
            {
                "idempotency_key": t.key,
                "kind": t.kind,
                "memo": t.memo,
                "digest": posting_digest(t.kind, t.legs),
                "created_at": now,
            }
            for t in transfers
        ],
    )
    ids = {
        key: tx_id
        for tx_id, key in conn.execute(
            select(_TRANSACTIONS_TABLE.c.id, _TRANSACTIONS_TABLE.c.idempotency_key).where(
                _TRANSACTIONS_TABLE.c.id > before
            )
        )
    }
    conn.execute(
        insert(_ENTRIES_TABLE),
        [
            {"transaction_id": ids[t.key], "account_id": accounts[leg.account].id, "amount": leg.amount}
            for t in transfers
            for leg in t.legs
        ],
    )
    conn.execute(
        update(_ACCOUNTS_TABLE)
        .where(_ACCOUNTS_TABLE.c.id == bindparam("account"))
        .values(balance=_ACCOUNTS_TABLE.c.balance + bindparam("delta")),
        [{"account": account_id, "delta": delta} for account_id, delta in sorted(moved.items()) if delta],
    )
    for obj in list(session.identity_map.values()):
        if isinstance(obj, LedgerAccount):
            session.expire(obj)
    kept: dict[str, LockedAccount] | None = conn.info.get(_KEPT)
    if kept is not None:  # moved here, not by `_moved`: read them again when next needed
        for code in {leg.account for transfer in transfers for leg in transfer.legs}:
            kept.pop(code, None)
    return [ids[key] for key in keys]


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
