"""Commands of the profit-share settlement: periods, revenue and cost records, settle, statements."""

from __future__ import annotations

import getpass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tokenclub.cli.output import (
    JSON_OPTION,
    console,
    emit,
    print_json,
    print_record,
    print_rows,
    session_scope,
)
from tokenclub.errors import InvalidInputError
from tokenclub.settlement.allocation import PoolBasis
from tokenclub.settlement.kinds import RecordKind

if TYPE_CHECKING:
    from tokenclub.settlement.settle import Settlement


revenue_app = typer.Typer(
    help="Revenue recorded by hand for a settlement period: add, list, void.", no_args_is_help=True
)
cost_app = typer.Typer(
    help="Costs recorded by hand for a settlement period: add, list, void.", no_args_is_help=True
)
period_app = typer.Typer(help="Settlement periods: open and list.", no_args_is_help=True)

PERIOD_OPTION = typer.Option(..., "--period", help="YYYY-MM (opened on first use) or a period's name.")
KRW_OPTION = typer.Option(..., "--krw", help="Amount in won.")
NOTE_OPTION = typer.Option(..., "--note", help="What it is, e.g. the contract or invoice.")
REASON_OPTION = typer.Option(..., "--reason", help="Why the record is wrong (kept with the void).")
BY_OPTION = typer.Option(
    None, "--by", help="Who voids it, kept with the void; default the login name of this shell's user."
)
LIST_PERIOD_OPTION = typer.Option(None, "--period", help="Only this period's records.")
RECORD_COLUMNS = ("id", "period", "krw", "note", "created_at", "status", "voided_by", "void_reason")
PEOPLE_ROWS = 50
PAYOUT_COLUMNS = ("partner", "tokens", "share", "allocated", "carried in", "paid", "carried out")


class StatementFormat(StrEnum):
    CSV = "csv"
    HTML = "html"
    PDF = "pdf"


def _add(kind: RecordKind, period: str, krw: int, note: str, json_out: bool) -> None:
    from tokenclub.settlement import periods

    with session_scope() as session:
        record = periods.add_record(session, period, kind, krw, note)
        result = {
            "id": record.id,
            "period": period,
            "kind": kind.value,
            "krw": record.krw,
            "note": record.note,
        }
    emit(result, json_out, f"{kind.value} recorded")


@revenue_app.command("add")
def revenue_add(
    period: str = PERIOD_OPTION, krw: int = KRW_OPTION, note: str = NOTE_OPTION, json_out: bool = JSON_OPTION
) -> None:
    """Record revenue besides the API's paid usage (e.g. an enterprise contract)."""
    _add(RecordKind.REVENUE, period, krw, note, json_out)


@cost_app.command("add")
def cost_add(
    period: str = PERIOD_OPTION, krw: int = KRW_OPTION, note: str = NOTE_OPTION, json_out: bool = JSON_OPTION
) -> None:
    """Record a cost of the API business in a period (it lowers the profit the pool is taken from)."""
    _add(RecordKind.COST, period, krw, note, json_out)


def _void(kind: RecordKind, record_id: int, reason: str, by: str | None, json_out: bool) -> None:
    from tokenclub.settlement import periods

    who = by if by is not None else getpass.getuser()
    with session_scope() as session:
        _, after = periods.void_record(session, record_id, kind, reason, who)
        result = after.as_dict()
    emit(result, json_out, f"{kind.value} record {record_id} voided")


def _list(kind: RecordKind, period: str | None, json_out: bool) -> None:
    from tokenclub.settlement import periods

    with session_scope() as session:
        rows = [view.as_dict() for view in periods.list_records(session, period, kind)]
    if json_out:
        print_json(rows)
        return
    shown = [{**row, "krw": f"{row['krw']:,}", "voided_by": row["voided_by"] or ""} for row in rows]
    print_rows(f"{kind.value} records (voided ones count for nothing)", RECORD_COLUMNS, shown)


@revenue_app.command("void")
def revenue_void(
    record_id: int = typer.Argument(..., help="The record's id, as `revenue list` shows it."),
    reason: str = REASON_OPTION,
    by: str | None = BY_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Void a wrong revenue record of an open period; it stays listed, marked voided, and no longer counts."""
    _void(RecordKind.REVENUE, record_id, reason, by, json_out)


@cost_app.command("void")
def cost_void(
    record_id: int = typer.Argument(..., help="The record's id, as `cost list` shows it."),
    reason: str = REASON_OPTION,
    by: str | None = BY_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Void a wrong cost record of an open period; it stays listed, marked voided, and no longer counts."""
    _void(RecordKind.COST, record_id, reason, by, json_out)


@revenue_app.command("list")
def revenue_list(period: str | None = LIST_PERIOD_OPTION, json_out: bool = JSON_OPTION) -> None:
    """List revenue records, voided ones included and marked."""
    _list(RecordKind.REVENUE, period, json_out)


@cost_app.command("list")
def cost_list(period: str | None = LIST_PERIOD_OPTION, json_out: bool = JSON_OPTION) -> None:
    """List cost records, voided ones included and marked."""
    _list(RecordKind.COST, period, json_out)


@period_app.command("open")
def period_open(
    month: str | None = typer.Argument(None, help="YYYY-MM; or give --start and --end."),
    start: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="First day (UTC)."),
    end: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="Last day (UTC), included."),
    name: str | None = typer.Option(None, help="Name of a date-range period; default FIRST..LAST."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Open a monthly period, or one over any range of whole days."""
    from tokenclub.settlement import periods

    if month is not None and start is None and end is None and name is None:
        label, bounds = month, periods.month_bounds(month)
    elif month is None and start is not None and end is not None:
        first, last = date(start.year, start.month, start.day), date(end.year, end.month, end.day)
        label, bounds = name or periods.day_range_name(first, last), periods.day_bounds(first, last)
    else:
        raise InvalidInputError("give a month (YYYY-MM) or --start and --end (with an optional --name)")
    with session_scope() as session:
        period = periods.open_period(session, label, *bounds)
        view = periods.PeriodView(period.name, period.starts_at, period.ends_at, closed=False)
    emit(view.as_dict(), json_out, f"period {view.name}")


@period_app.command("list")
def period_list(json_out: bool = JSON_OPTION) -> None:
    """List settlement periods in time order with their state."""
    from tokenclub.settlement import periods

    with session_scope() as session:
        rows = [view.as_dict() for view in periods.list_periods(session)]
    if json_out:
        print_json(rows)
    else:
        print_rows("settlement periods", ("name", "starts_at", "ends_at", "status"), rows)


def _print_settlement(result: Settlement) -> None:
    data = result.as_dict()
    payouts = data.pop("payouts")
    assert isinstance(payouts, list)
    print_record(f"settlement {result.period}", data)
    rows = [
        {
            "partner": row["partner"],
            "tokens": f"{row['tokens']:,}",
            "share": f"{row['share']:.4%}",
            "allocated": f"{row['krw']:,}",
            "carried in": f"{row['carried_in_krw']:,}",
            "paid": f"{row['paid_krw']:,}",
            "carried out": f"{row['carried_out_krw']:,}",
        }
        for row in payouts[:PEOPLE_ROWS]
    ]
    print_rows("payouts (KRW)", PAYOUT_COLUMNS, rows)
    if len(payouts) > PEOPLE_ROWS:
        console.print(f"… and {len(payouts) - PEOPLE_ROWS:,} more partners (all of them with --json)")
    if not result.created:
        console.print(f"period {result.period} was already closed; this is its frozen result")


def settle(
    period: str = PERIOD_OPTION,
    pool_basis: PoolBasis | None = typer.Option(
        None,
        "--pool-basis",
        help="profit: rate × max(0, revenue − costs); revenue: rate × revenue. "
        "Default TOKENCLUB_POOL_BASIS; frozen into the period.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Close a period: pool = rate × max(0, profit or revenue), split by credited tokens, payouts posted.

    Settling a closed period again prints the same result and changes nothing.
    """
    from tokenclub.settings import get_settings
    from tokenclub.settlement.settle import Terms, close_period

    with session_scope() as session:
        result = close_period(session, period, Terms.from_settings(get_settings(), pool_basis))
    if json_out:
        print_json(result.as_dict())
    else:
        _print_settlement(result)


def statement(
    partner: int = typer.Option(..., "--partner", help="Partner ID."),
    period: str = typer.Option(..., "--period", help="A closed period's name (YYYY-MM for a month)."),
    export: StatementFormat | None = typer.Option(None, "--format", help="Export as csv, html or pdf."),
    out: Path | None = typer.Option(None, "--out", help="Write the export to this file."),
    json_out: bool = JSON_OPTION,
) -> None:
    """One partner's statement for a closed period: pool, share, payout, carry-over, free usage value."""
    from tokenclub.settlement.export import sections, to_csv, to_html, to_pdf
    from tokenclub.settlement.statement import build_statement

    with session_scope() as session:
        result = build_statement(session, partner, period)
    if export is None:
        if json_out:
            print_json(result.as_dict())
        else:
            for title, rows in sections(result):
                print_rows(title, ("item", "value"), [{"item": k, "value": v} for k, v in rows])
        return
    if export is StatementFormat.PDF:
        if out is None:
            raise InvalidInputError("--format pdf needs --out PATH")
        out.write_bytes(to_pdf(result))
    else:
        text = to_csv(result) if export is StatementFormat.CSV else to_html(result)
        if out is None:
            typer.echo(text, nl=False)
            return
        # A BOM lets spreadsheet programs recognise UTF-8 and show Korean names correctly.
        out.write_text(text, encoding="utf-8-sig" if export is StatementFormat.CSV else "utf-8")
    emit(
        {"partner": partner, "period": period, "format": export.value, "out": str(out)}, json_out, "statement"
    )
