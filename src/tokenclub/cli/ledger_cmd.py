"""Commands that read the ledger: balances and the consistency audit."""

from __future__ import annotations

import typer

from tokenclub.accounts import customers
from tokenclub.cli.output import JSON_OPTION, emit, print_json, session_scope
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.ledger.posting import audit

ledger_app = typer.Typer(help="Ledger checks.", no_args_is_help=True)


def balance(
    partner: int | None = typer.Option(None, "--partner", help="Partner ID."),
    customer: int | None = typer.Option(None, "--customer", help="Customer account ID."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show free tokens granted, used and left, paid tokens, KRW receivable and payable."""
    if (partner is None) == (customer is None):
        raise InvalidInputError("give exactly one of --partner or --customer")
    with session_scope() as session:
        if partner is not None:
            customer_id = customers.customer_of_partner(session, partner).id
        else:
            assert customer is not None
            customer_id = customer
        summary = customers.balance_summary(session, customer_id)
    label = f"partner {partner}" if partner is not None else f"customer {customer}"
    emit({"customer_id": customer_id, **summary}, json_out, f"balance of {label}")


@ledger_app.command("audit")
def ledger_audit(json_out: bool = JSON_OPTION) -> None:
    """Check that every cached balance equals the sum of its entries and every transaction balances."""
    with session_scope() as session:
        problems = audit(session)
    if json_out:
        print_json({"ok": not problems, "problems": problems})
    elif not problems:
        emit({"ok": True}, False, "ledger audit")
    if problems:
        raise StateError(f"ledger audit found {len(problems)} problem(s): {problems[0]}")
