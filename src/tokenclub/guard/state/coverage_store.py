"""Coverage in the database: the grams each customer was sent, and its requests in flight.

Every admission adds a hold (`customer_state.read_admission`, with its first read); a customer
with grams in the window also has its customer row locked (PostgreSQL `FOR NO KEY UPDATE`;
SQLite serialises writers) and its grams and holds read in the same transaction, so two concurrent
admissions see each other's reservation. The hold goes when the reply is tallied, or is
ignored after `Limits.hold_s` (a request that died; such rows are deleted when the customer's
grams are next written). Grams are kept for the coverage window; older rows of a customer are
deleted whenever grams are added.

A document capped (its coverage over all customers past the document cap, more than one
customer's own) gets a row in
`guard_capped_documents`; each gateway worker caches the set and reloads it when the table's
(row count, newest id), read with every admission, changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardCappedDocument, GuardCoverage, GuardCoverageHold
from tokenclub.db.prebuilt import Prebuilt
from tokenclub.db.schema import Customer
from tokenclub.ledger.posting import Rider

_GRAMS = cast(Table, GuardCoverage.__table__)
_HOLDS = cast(Table, GuardCoverageHold.__table__)
_CAPPED = cast(Table, GuardCappedDocument.__table__)


def lock_customer(session: Session, customer_id: int) -> None:
    """Serialise the customer's admissions until the transaction ends. PostgreSQL's `FOR NO KEY
    UPDATE`: the admission's hold, inserted first, holds a key-share lock on the row (its
    foreign key), which `FOR UPDATE` would wait on in a concurrent admission: a deadlock."""
    session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True))


def customer_grams(
    session: Session, customer_id: int, generation: str, since: int
) -> tuple[dict[int, set[int]], set[int]]:
    """The customer's grams per document, and the documents of the grams it was refused
    (asked for after the document was capped)."""
    rows = session.execute(
        select(_GRAMS.c.doc, _GRAMS.c.ordinal, _GRAMS.c.blocked).where(
            _GRAMS.c.customer_id == customer_id,
            _GRAMS.c.generation == generation,
            _GRAMS.c.created_s >= since,
        )
    )
    found: dict[int, set[int]] = {}
    asked: set[int] = set()
    for doc, ordinal, blocked in rows:
        found.setdefault(int(doc), set()).add(int(ordinal))
        if blocked:
            asked.add(int(doc))
    return found, asked


def document_grams(
    session: Session, generation: str, docs: list[int], since: int
) -> dict[int, dict[int, set[int]]]:
    """Every customer's grams of `docs`, per document and customer (the document cap is about
    their union, and about whether more than one customer made it)."""
    if not docs:
        return {}
    rows = session.execute(
        select(_GRAMS.c.doc, _GRAMS.c.customer_id, _GRAMS.c.ordinal)
        .where(_GRAMS.c.generation == generation, _GRAMS.c.doc.in_(docs), _GRAMS.c.created_s >= since)
        .distinct()
    )
    found: dict[int, dict[int, set[int]]] = {}
    for doc, customer, ordinal in rows:
        found.setdefault(int(doc), {}).setdefault(int(customer), set()).add(int(ordinal))
    return found


def live_holds(session: Session, customer_id: int, since: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(_HOLDS)
            .where(_HOLDS.c.customer_id == customer_id, _HOLDS.c.created_s >= since)
        )
        or 0
    )


_DROP_HOLD = Prebuilt(delete(_HOLDS).where(_HOLDS.c.id == bindparam("hold")))


def drop_hold(session: Session, hold: int) -> None:
    """Release a tallied request's hold (added with its admission, `customer_state.read_admission`;
    both on every request, so prebuilt)."""
    _DROP_HOLD.run(session.connection(), {"hold": hold})


_RELEASE_RIDER = """, released_hold AS (
    DELETE FROM guard_coverage_holds WHERE id = %(g_hold)s AND EXISTS (SELECT 1 FROM tx)
)"""


def release_rider(hold: int) -> Rider:
    """`drop_hold` as a write that goes with the request's charge in the ledger's one statement
    (PostgreSQL): one round trip less per settled request. Only if the posting is written."""
    return Rider(_RELEASE_RIDER, {"g_hold": hold})


def forget_stale_holds(session: Session, customer_id: int, stale: int) -> None:
    """Forget the customer's holds older than `stale` (requests that died untallied)."""
    session.execute(delete(_HOLDS).where(_HOLDS.c.customer_id == customer_id, _HOLDS.c.created_s < stale))


def add_grams(
    session: Session,
    customer_id: int,
    key_id: int,
    generation: str,
    grams: Mapping[int, frozenset[int]],
    partners: Mapping[int, int],
    now: int,
    since: int,
    blocked: frozenset[int] = frozenset(),
) -> None:
    """Keep a delivered reply's grams (a gram already held is refreshed, not doubled; those of
    the documents `blocked` are marked as refused) and drop the customer's grams older than
    `since`."""
    rows: list[dict[str, Any]] = [
        {
            "customer_id": customer_id,
            "generation": generation,
            "doc": doc,
            "ordinal": ordinal,
            "key_id": key_id,
            "partner_id": partners[doc],
            "created_s": now,
            "blocked": doc in blocked,
        }
        for doc, ordinals in sorted(grams.items())
        for ordinal in sorted(ordinals)
    ]
    if rows:
        dialect = session.get_bind().dialect.name
        upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(_GRAMS).values(rows)
        keys = ("customer_id", "generation", "doc", "ordinal")
        session.execute(upsert.on_conflict_do_update(index_elements=keys, set_={"created_s": now}))
    session.execute(delete(_GRAMS).where(_GRAMS.c.customer_id == customer_id, _GRAMS.c.created_s < since))


@dataclass(frozen=True, slots=True)
class Holding:
    """What one customer holds of one document in the window, for the operator's view."""

    customer_id: int
    doc: int
    partner_id: int
    ordinals: frozenset[int]
    last_s: int


def holdings(
    session: Session, generation: str, since: int, customer: int | None = None, document: int | None = None
) -> list[Holding]:
    """Every (customer, document) pair's grams in the window, optionally of one customer or document."""
    query = select(
        _GRAMS.c.customer_id, _GRAMS.c.doc, _GRAMS.c.partner_id, _GRAMS.c.ordinal, _GRAMS.c.created_s
    ).where(_GRAMS.c.generation == generation, _GRAMS.c.created_s >= since)
    if customer is not None:
        query = query.where(_GRAMS.c.customer_id == customer)
    if document is not None:
        query = query.where(_GRAMS.c.doc == document)
    found: dict[tuple[int, int], tuple[int, set[int], int]] = {}
    for customer_id, doc, partner_id, ordinal, created_s in session.execute(query):
        partner, ordinals, last = found.setdefault((int(customer_id), int(doc)), (int(partner_id), set(), 0))
        ordinals.add(int(ordinal))
        found[(int(customer_id), int(doc))] = (partner, ordinals, max(last, int(created_s)))
    return [
        Holding(customer_id, doc, partner, frozenset(ordinals), last)
        for (customer_id, doc), (partner, ordinals, last) in sorted(found.items())
    ]


def capped_documents(session: Session, generation: str, since: int) -> dict[int, int]:
    """Document → when it was capped, for the documents of `generation` capped since `since`."""
    rows = session.execute(
        select(_CAPPED.c.doc, _CAPPED.c.capped_s).where(
            _CAPPED.c.generation == generation, _CAPPED.c.capped_s >= since
        )
    )
    return {int(doc): int(capped_s) for doc, capped_s in rows}


def cap_document(
    session: Session, generation: str, doc: int, partner_id: int, letters: int, now: int, since: int
) -> None:
    """Record a document as capped (once: a concurrent cap of the same document is a no-op), and
    forget caps older than `since` (their documents may be capped again)."""
    session.execute(delete(_CAPPED).where(_CAPPED.c.capped_s < since))
    dialect = session.get_bind().dialect.name
    row = dict(generation=generation, doc=doc, partner_id=partner_id, letters=letters, capped_s=now)
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(_CAPPED).values(row)
    session.execute(upsert.on_conflict_do_nothing(index_elements=("generation", "doc")))
