"""Commands that read the ledger: balances and the consistency audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tokenclub.cli.output import JSON_OPTION, emit, print_json, print_rows, session_scope
from tokenclub.errors import InvalidInputError, StateError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


ledger_app = typer.Typer(help="Ledger checks.", no_args_is_help=True)


def _customer_id(session: Session, partner: int | None, customer: int | None) -> int:
    from tokenclub.accounts import customers

    if (partner is None) == (customer is None):
        raise InvalidInputError("give exactly one of --partner or --customer")
    if partner is not None:
        return customers.customer_of_partner(session, partner).id
    assert customer is not None
    return customers.get_customer(session, customer).id


def usage(
    partner: int | None = typer.Option(None, "--partner", help="Partner ID."),
    customer: int | None = typer.Option(None, "--customer", help="Customer account ID."),
    limit: int = typer.Option(100, min=1, max=100_000, help="Newest events to show."),
    json_out: bool = JSON_OPTION,
) -> None:
    """API usage events of one account: tokens, free/paid split, KRW, latency, status."""
    from sqlalchemy import select

    from tokenclub.db.schema import UsageEvent
    from tokenclub.gateway.usage import usage_event_dict

    with session_scope() as session:
        customer_id = _customer_id(session, partner, customer)
        rows = [
            usage_event_dict(row)
            for row in session.scalars(
                select(UsageEvent)
                .where(UsageEvent.customer_id == customer_id)
                .order_by(UsageEvent.id.desc())
                .limit(limit)
            )
        ]
    if json_out:
        print_json(rows)
    else:
        print_rows(
            f"usage of customer {customer_id}",
            (
                "created_at",
                "endpoint",
                "prompt_tokens",
                "completion_tokens",
                "free_tokens",
                "paid_tokens",
                "krw",
                "status",
            ),
            rows,
        )


def balance(
    partner: int | None = typer.Option(None, "--partner", help="Partner ID."),
    customer: int | None = typer.Option(None, "--customer", help="Customer account ID."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show free tokens granted, used and left, paid tokens, KRW receivable and payable."""
    from tokenclub.accounts import customers

    with session_scope() as session:
        customer_id = _customer_id(session, partner, customer)
        summary = customers.balance_summary(session, customer_id)
    label = f"partner {partner}" if partner is not None else f"customer {customer}"
    emit({"customer_id": customer_id, **summary}, json_out, f"balance of {label}")


@ledger_app.command("audit")
def ledger_audit(json_out: bool = JSON_OPTION) -> None:
    """Check that every cached balance equals the sum of its entries, every transaction balances
    and no hold charged more than it held; counts the upstream usage anomalies (usage reported
    above a hold, charged at the hold)."""
    from tokenclub.ledger.holds import audit_holds, usage_anomalies
    from tokenclub.ledger.posting import audit

    with session_scope() as session:
        problems = audit(session) + audit_holds(session)
        anomalies = usage_anomalies(session)
    if json_out:
        print_json({"ok": not problems, "problems": problems, "usage_anomalies": anomalies})
    elif not problems:
        emit({"ok": True, "usage_anomalies": anomalies}, False, "ledger audit")
    if problems:
        raise StateError(f"ledger audit found {len(problems)} problem(s): {problems[0]}")
