"""A customer's recent fragments in the database, shared by every gateway worker.

Read with the request's admission (one prebuilt statement), written with the reply's tally.
Rows older than the accumulation window are deleted whenever the customer is written, and a
read takes only the newest `KEPT` of the index generation in use: a passage taken piece by
piece joins a recent piece, and a customer's chance fragments cannot grow the work per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from tokenclub.db.guard_schema import GuardFragment
from tokenclub.db.prebuilt import Prebuilt
from tokenclub.guard.detection.fragments import Fragment

KEPT = 32
_TABLE = cast(Table, GuardFragment.__table__)
_COLUMNS = ("hits", "partners", "first", "head", "last", "tail", "letters")

_LOAD = Prebuilt(
    select(*(_TABLE.c[name] for name in _COLUMNS))
    .where(
        _TABLE.c.customer_id == bindparam("customer_id"),
        _TABLE.c.created_s >= bindparam("since"),
        _TABLE.c.generation == bindparam("generation"),
    )
    .order_by(_TABLE.c.id.desc())
    .limit(bindparam("kept"))
    .offset(bindparam("skip"))
)
_INSERT = Prebuilt(insert(_TABLE).values({c.name: bindparam(c.name) for c in _TABLE.c if c.name != "id"}))
_EXPIRE = Prebuilt(
    delete(_TABLE).where(
        _TABLE.c.customer_id == bindparam("customer_id"), _TABLE.c.created_s < bindparam("since")
    )
)


def _words(values: Sequence[int]) -> bytes:
    return np.asarray(values, dtype="<u8").tobytes()


def _values(blob: bytes) -> tuple[int, ...]:
    return tuple(np.frombuffer(blob, dtype="<u8").tolist())


def load_fragments(session: Session, customer_id: int, generation: str, since: int) -> list[Fragment]:
    """The customer's fragments created at or after `since` (Unix seconds), newest first."""
    rows = _LOAD.run(
        session.connection(),
        {"customer_id": customer_id, "since": since, "generation": generation, "kept": KEPT, "skip": 0},
    )
    return [
        Fragment(
            hits,
            tuple(int(p) for p in partners.split(",")),
            first,
            _values(head),
            last,
            _values(tail),
            letters=letters,
        )
        for hits, partners, first, head, last, tail, letters in rows
    ]


def save_fragments(
    session: Session,
    customer_id: int,
    key_id: int,
    generation: str,
    fragments: Sequence[Fragment],
    now: int,
    since: int,
) -> None:
    """Keep a delivered reply's fragments and drop the customer's rows older than `since`."""
    conn = session.connection()
    if fragments:
        _INSERT.run(
            conn,
            [
                {
                    "customer_id": customer_id,
                    "key_id": key_id,
                    "created_s": now,
                    "generation": generation,
                    "hits": f.hits,
                    "partners": ",".join(map(str, f.partners)),
                    "first": f.first,
                    "head": _words(f.head),
                    "last": f.last,
                    "tail": _words(f.tail),
                    "letters": f.letters,
                }
                for f in fragments
            ],
        )
    _EXPIRE.run(conn, {"customer_id": customer_id, "since": since})
