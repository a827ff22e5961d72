"""Settlement periods and the operator's revenue and cost records.

A period is a half-open UTC range [starts_at, ends_at). Periods never overlap, so no won of
revenue is counted twice, and they are closed in time order, so the carry-over of one close
is always the carry-in of the next. Monthly periods are named `YYYY-MM` and open themselves
on first use; any other range is opened explicitly.

A wrong record is voided while its period is open: the record stays as entered, its void
(who, when, why) is a row of its own, and the pool no longer counts it. Records are the
operator's inputs to the pool, not ledger entries: no money moves when one is added or voided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.db.settlement_schema import (
    SettlementClosing,
    SettlementPeriod,
    SettlementRecord,
    SettlementRecordVoid,
)
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.settlement.kinds import RecordKind as RecordKind

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
VOIDED_BY_MAX = 400


@dataclass(frozen=True, slots=True)
class RecordView:
    """A record as listed: what was entered and, when voided, who voided it, when and why."""

    id: int
    period: str
    kind: str
    krw: int
    note: str
    created_at: datetime
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None

    @property
    def voided(self) -> bool:
        return self.voided_at is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "period": self.period,
            "kind": self.kind,
            "krw": self.krw,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "status": "voided" if self.voided else "counted",
            "voided_at": self.voided_at.isoformat() if self.voided_at else None,
            "voided_by": self.voided_by,
            "void_reason": self.void_reason,
        }


@dataclass(frozen=True, slots=True)
class PeriodView:
    name: str
    starts_at: datetime
    ends_at: datetime
    closed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "status": "closed" if self.closed else "open",
        }


def month_bounds(name: str) -> tuple[datetime, datetime]:
    """The UTC range of a `YYYY-MM` month."""
    match = MONTH.fullmatch(name)
    if match is None:
        raise InvalidInputError(f"period {name!r} is not a month in the form YYYY-MM")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC range of whole days `first` to `last`, both included."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def day_range_name(first: date, last: date) -> str:
    """The default name of a range of whole days, both ends included."""
    return f"{first.isoformat()}..{last.isoformat()}"


def is_closed(session: Session, period: SettlementPeriod) -> bool:
    return bool(session.scalar(select(exists().where(SettlementClosing.period_id == period.id))))


def open_period(session: Session, name: str, starts_at: datetime, ends_at: datetime) -> SettlementPeriod:
    """Open a period; refused when it overlaps another or lies before one already closed."""
    if NAME.fullmatch(name) is None:
        raise InvalidInputError(f"period name {name!r}: use 1..64 letters, digits, '.', '_' or '-'")
    if MONTH.fullmatch(name) and (starts_at, ends_at) != month_bounds(name):
        raise InvalidInputError(f"period name {name!r} is reserved for that calendar month")
    if not starts_at < ends_at:
        raise InvalidInputError("a period must end after it starts")
    clash = session.scalar(
        select(SettlementPeriod.name)
        .where(SettlementPeriod.starts_at < ends_at, SettlementPeriod.ends_at > starts_at)
        .limit(1)
    )
    if clash is not None:
        raise InvalidInputError(f"period {name} would overlap period {clash}")
    last_closed_end = session.scalar(
        select(func.max(SettlementPeriod.ends_at)).join(
            SettlementClosing, SettlementClosing.period_id == SettlementPeriod.id
        )
    )
    if last_closed_end is not None and starts_at < last_closed_end:
        raise StateError(f"period {name} starts before the end of a closed period")
    period = SettlementPeriod(name=name, starts_at=starts_at, ends_at=ends_at)
    try:
        with session.begin_nested():
            session.add(period)
            session.flush()
    except IntegrityError as exc:
        raise InvalidInputError(f"period {name} already exists") from exc
    return period


def get_period(session: Session, name: str, *, lock: bool = False) -> SettlementPeriod:
    """The named period; `lock` serialises closing and recording against each other."""
    query = select(SettlementPeriod).where(SettlementPeriod.name == name)
    period = session.scalar(query.with_for_update() if lock else query)
    if period is None:
        raise NotFoundError(f"period {name} does not exist")
    return period


def get_or_open(session: Session, name: str, *, lock: bool = False) -> SettlementPeriod:
    """The named period; a `YYYY-MM` month that does not exist yet is opened."""
    try:
        return get_period(session, name, lock=lock)
    except NotFoundError:
        if MONTH.fullmatch(name) is None:
            raise
    try:
        open_period(session, name, *month_bounds(name))
    except InvalidInputError:
        # A concurrent command may have opened the same month a moment ago; if not, the refusal stands.
        if session.scalar(select(SettlementPeriod.id).where(SettlementPeriod.name == name)) is None:
            raise
    return get_period(session, name, lock=lock)


def list_periods(session: Session) -> list[PeriodView]:
    closed = set(session.scalars(select(SettlementClosing.period_id)))
    return [
        PeriodView(p.name, p.starts_at, p.ends_at, p.id in closed)
        for p in session.scalars(select(SettlementPeriod).order_by(SettlementPeriod.starts_at))
    ]


def add_record(session: Session, period_name: str, kind: RecordKind, krw: int, note: str) -> SettlementRecord:
    """Record revenue or cost by hand; a closed period refuses it, because it never changes."""
    if krw <= 0:
        raise InvalidInputError(f"amount must be a positive number of won, got {krw}")
    period = get_or_open(session, period_name, lock=True)
    if is_closed(session, period):
        raise StateError(f"period {period.name} is closed; record it in an open period")
    record = SettlementRecord(period_id=period.id, kind=kind.value, krw=krw, note=note.strip())
    session.add(record)
    session.flush()
    return record


def _not_voided() -> ColumnElement[bool]:
    return ~exists().where(SettlementRecordVoid.record_id == SettlementRecord.id)


def record_totals(session: Session, period: SettlementPeriod) -> dict[RecordKind, int]:
    """Manual revenue and cost of a period, in won; voided records count for nothing."""
    totals = dict.fromkeys(RecordKind, 0)
    for kind, total in session.execute(
        select(SettlementRecord.kind, func.sum(SettlementRecord.krw))
        .where(SettlementRecord.period_id == period.id, _not_voided())
        .group_by(SettlementRecord.kind)
    ):
        totals[RecordKind(kind)] = int(total)
    return totals


def counted_records(session: Session, period: SettlementPeriod) -> list[SettlementRecord]:
    """The records of a period that count towards its pool, in the order they were entered."""
    return list(
        session.scalars(
            select(SettlementRecord)
            .where(SettlementRecord.period_id == period.id, _not_voided())
            .order_by(SettlementRecord.id)
        )
    )


def list_records(
    session: Session, period_name: str | None = None, kind: RecordKind | None = None
) -> list[RecordView]:
    """Records with their voids, oldest first; of one period and of one kind when given."""
    query = (
        select(SettlementRecord, SettlementPeriod.name, SettlementRecordVoid)
        .join(SettlementPeriod, SettlementPeriod.id == SettlementRecord.period_id)
        .outerjoin(SettlementRecordVoid, SettlementRecordVoid.record_id == SettlementRecord.id)
        .order_by(SettlementRecord.id)
    )
    if period_name is not None:
        query = query.where(SettlementRecord.period_id == get_period(session, period_name).id)
    if kind is not None:
        query = query.where(SettlementRecord.kind == kind.value)
    return [_view(record, name, void) for record, name, void in session.execute(query)]


def get_record(session: Session, record_id: int) -> RecordView:
    rows = session.execute(
        select(SettlementRecord, SettlementPeriod.name, SettlementRecordVoid)
        .join(SettlementPeriod, SettlementPeriod.id == SettlementRecord.period_id)
        .outerjoin(SettlementRecordVoid, SettlementRecordVoid.record_id == SettlementRecord.id)
        .where(SettlementRecord.id == record_id)
    )
    found = rows.first()
    if found is None:
        raise NotFoundError(f"record {record_id} does not exist")
    return _view(*found)


def _view(record: SettlementRecord, period: str, void: SettlementRecordVoid | None) -> RecordView:
    return RecordView(
        record.id,
        period,
        record.kind,
        record.krw,
        record.note,
        record.created_at,
        void.voided_at if void else None,
        void.voided_by if void else None,
        void.reason if void else None,
    )


def void_record(
    session: Session, record_id: int, kind: RecordKind, reason: str, voided_by: str
) -> tuple[RecordView, RecordView]:
    """Void a record of an open period; returns it (before, after).

    Refused when the record is of the other kind, already voided, or its period is closed
    (a closed period never changes). The period row is locked first, as `add_record` and
    closing do, so a void and a close of the same period cannot interleave.
    """
    why, who = reason.strip(), voided_by.strip()
    if not why:
        raise InvalidInputError("reason: say why the record is voided")
    if not who or len(who) > VOIDED_BY_MAX:
        raise InvalidInputError(f"voided by: give a name of 1..{VOIDED_BY_MAX} characters")
    record = session.get(SettlementRecord, record_id)
    if record is None:
        raise NotFoundError(f"record {record_id} does not exist")
    if record.kind != kind.value:
        raise InvalidInputError(f"record {record_id} is {record.kind}, not {kind.value}")
    period = session.scalar(
        select(SettlementPeriod).where(SettlementPeriod.id == record.period_id).with_for_update()
    )
    assert period is not None
    if is_closed(session, period):
        raise StateError(f"period {period.name} is closed; its record {record_id} can no longer be voided")
    before = get_record(session, record_id)
    if before.voided:
        raise StateError(f"record {record_id} was already voided at {before.voided_at:%Y-%m-%d %H:%M} UTC")
    try:
        with session.begin_nested():
            session.add(
                SettlementRecordVoid(record_id=record_id, voided_at=utcnow(), voided_by=who, reason=why)
            )
            session.flush()
    except IntegrityError as exc:
        raise StateError(f"record {record_id} was already voided") from exc
    return before, get_record(session, record_id)
