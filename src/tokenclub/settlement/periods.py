"""Settlement periods and the operator's revenue and cost records.

A period is a half-open UTC range [starts_at, ends_at). Periods never overlap, so no won of
revenue is counted twice, and they are closed in time order, so the carry-over of one close
is always the carry-in of the next. Monthly periods are named `YYYY-MM` and open themselves
on first use; any other range is opened explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.db.settlement_schema import SettlementClosing, SettlementPeriod, SettlementRecord
from tokenclub.errors import InvalidInputError, NotFoundError, StateError

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")


class RecordKind(StrEnum):
    REVENUE = "revenue"
    COST = "cost"


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


def record_totals(session: Session, period: SettlementPeriod) -> dict[RecordKind, int]:
    """Manual revenue and cost of a period, in won."""
    totals = dict.fromkeys(RecordKind, 0)
    for kind, total in session.execute(
        select(SettlementRecord.kind, func.sum(SettlementRecord.krw))
        .where(SettlementRecord.period_id == period.id)
        .group_by(SettlementRecord.kind)
    ):
        totals[RecordKind(kind)] = int(total)
    return totals
