"""Commands for partners, customer accounts and API keys."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import typer

from tokenclub.accounts.kinds import OrgType, PartnerStatus
from tokenclub.cli.output import JSON_OPTION, emit, print_json, print_rows, session_scope
from tokenclub.errors import InvalidInputError

if TYPE_CHECKING:
    from tokenclub.db.schema import Customer

partner_app = typer.Typer(help="Partner applications and decisions.", no_args_is_help=True)
customer_app = typer.Typer(help="Customer accounts that use the API.", no_args_is_help=True)
key_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)

PARTNER_COLUMNS = (
    "id",
    "name",
    "status",
    "tier",
    "org_type",
    "accepted_words",
    "customer_id",
    "decision_note",
)


def _threshold() -> int:
    from tokenclub.settings import get_settings

    return get_settings().member_threshold_words


@partner_app.command("add")
def partner_add(
    name: str,
    contact: str = typer.Option("", help="E-mail or phone of the contact person."),
    org_type: OrgType = typer.Option(OrgType.OTHER, "--org-type", help="Kind of organisation."),
    description: str = typer.Option("", help="What data the partner declares it will contribute."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Record a partner's application (status `applied`)."""
    from tokenclub.accounts import partners

    with session_scope() as session:
        view = partners.apply(
            session,
            name,
            threshold_words=_threshold(),
            contact=contact,
            org_type=org_type,
            data_description=description,
        )
    emit(view.as_dict(), json_out, f"partner {view.id}")


@partner_app.command("list")
def partner_list(
    status: PartnerStatus | None = typer.Option(None, help="Only partners in this status."),
    json_out: bool = JSON_OPTION,
) -> None:
    """List partners with their status and membership tier."""
    from tokenclub.accounts import partners

    with session_scope() as session:
        views = partners.list_partners(session, _threshold(), status.value if status else None)
    rows = [v.as_dict() for v in views]
    if json_out:
        print_json(rows)
    else:
        print_rows("partners", PARTNER_COLUMNS, rows)


@partner_app.command("show")
def partner_show(partner_id: int, json_out: bool = JSON_OPTION) -> None:
    """Show one partner."""
    from tokenclub.accounts import partners

    with session_scope() as session:
        view = partners.show(session, partner_id, _threshold())
    emit(view.as_dict(), json_out, f"partner {view.id}")


def _decide(partner_id: int, status: PartnerStatus, note: str, json_out: bool) -> None:
    from tokenclub.accounts import partners

    with session_scope() as session:
        view = partners.decide(session, partner_id, status, _threshold(), note)
    emit(view.as_dict(), json_out, f"partner {view.id}")


@partner_app.command("approve")
def partner_approve(partner_id: int, note: str = "", json_out: bool = JSON_OPTION) -> None:
    """Approve an application (operator)."""
    _decide(partner_id, PartnerStatus.APPROVED, note, json_out)


@partner_app.command("reject")
def partner_reject(partner_id: int, note: str = "", json_out: bool = JSON_OPTION) -> None:
    """Reject an application (operator)."""
    _decide(partner_id, PartnerStatus.REJECTED, note, json_out)


@partner_app.command("withdraw")
def partner_withdraw(partner_id: int, json_out: bool = JSON_OPTION) -> None:
    """Take an approved partner's data out of future training (operator): no more uploads and
    its documents leave `corpus dump`. Its text stays in the leak-guard index, protected, until
    `tokenclub guard release --partner ID` (a served model may have been trained on it)."""
    from tokenclub.accounts import partners
    from tokenclub.guard.indexing.index import open_index
    from tokenclub.guard.indexing.parts import guard_root  # the index's NumPy only where it is read
    from tokenclub.settings import get_settings

    settings = get_settings()
    with session_scope() as session:
        view = partners.withdraw(session, partner_id, _threshold())
    out: dict[str, object] = view.as_dict()
    index = open_index(guard_root(settings.home))
    if index is not None:
        out["guard_index"] = {"generation": index.folder.name, "protected": partner_id not in index.withdrawn}
    emit(out, json_out, f"partner {view.id} withdrawn")


def _customer_dict(customer: Customer) -> dict[str, object]:
    return {
        "id": customer.id,
        "name": customer.name,
        "partner_id": customer.partner_id,
        "spending_limit_krw": customer.spending_limit_krw,
        "created_at": customer.created_at.isoformat(),
    }


@customer_app.command("add")
def customer_add(
    name: str,
    spending_limit_krw: int | None = typer.Option(None, "--spending-limit-krw", help="Most KRW it may owe."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Open a customer account that pays list price (partners get theirs automatically)."""
    from tokenclub.accounts import customers
    from tokenclub.ledger.operations import grant_credit_line

    with session_scope() as session:
        customer = customers.create_customer(session, name, spending_limit_krw=spending_limit_krw)
        if spending_limit_krw:
            grant_credit_line(session, customer.id, spending_limit_krw, f"credit-line:{customer.id}:initial")
        data = _customer_dict(customer)
    emit(data, json_out, f"customer {data['id']}")


@customer_app.command("credit")
def customer_credit(
    customer: int = typer.Option(..., "--customer", help="Customer account ID."),
    krw: int = typer.Option(
        ..., "--krw", min=1, help="KRW the customer may additionally spend at list price."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Raise a customer's spending limit (its KRW credit line for paid API usage)."""
    from tokenclub.accounts import customers
    from tokenclub.ledger.operations import grant_credit_line

    with session_scope() as session:
        customers.get_customer(session, customer)
        grant_credit_line(session, customer, krw, f"credit-line:{customer}:{uuid.uuid4().hex}")
        summary = customers.balance_summary(session, customer)
    emit({"customer_id": customer, **summary}, json_out, f"customer {customer}")


@customer_app.command("list")
def customer_list(json_out: bool = JSON_OPTION) -> None:
    """List customer accounts."""
    from tokenclub.accounts import customers

    with session_scope() as session:
        rows = [_customer_dict(c) for c in customers.list_customers(session)]
    if json_out:
        print_json(rows)
    else:
        print_rows("customers", ("id", "name", "partner_id", "spending_limit_krw"), rows)


def _resolve_customer(partner: int | None, customer: int | None) -> int:
    from tokenclub.accounts import customers, partners

    if (partner is None) == (customer is None):
        raise InvalidInputError("give exactly one of --partner or --customer")
    with session_scope() as session:
        if partner is not None:
            partners.require_approved(session, partner)
            return customers.customer_of_partner(session, partner).id
        assert customer is not None
        return customers.get_customer(session, customer).id


PARTNER_OPTION = typer.Option(None, "--partner", help="Partner ID.")
CUSTOMER_OPTION = typer.Option(None, "--customer", help="Customer account ID.")


@key_app.command("create")
def key_create(
    partner: int | None = PARTNER_OPTION,
    customer: int | None = CUSTOMER_OPTION,
    name: str = typer.Option("", help="A label for the key."),
    scope: list[str] = typer.Option(
        ["inference"], "--scope", help="inference, data or account; repeat for several."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Issue an API key; the key is printed once and cannot be shown again."""
    from tokenclub.accounts import keys

    customer_id = _resolve_customer(partner, customer)
    with session_scope() as session:
        plain, view = keys.create_key(session, customer_id, name, scope)
    data = {"key": plain, **view.as_dict()}
    if json_out:
        print_json(data)
    else:
        emit(data, False, f"API key {view.id} (copy the key now: it is not shown again)")


@key_app.command("list")
def key_list(
    partner: int | None = PARTNER_OPTION,
    customer: int | None = CUSTOMER_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List keys (prefix and state only; secrets are never stored)."""
    from tokenclub.accounts import keys

    customer_id = None if partner is None and customer is None else _resolve_customer(partner, customer)
    with session_scope() as session:
        rows = [v.as_dict() for v in keys.list_keys(session, customer_id)]
    if json_out:
        print_json(rows)
    else:
        print_rows("API keys", ("id", "customer_id", "name", "prefix", "active", "created_at"), rows)


@key_app.command("revoke")
def key_revoke(key_id: int, json_out: bool = JSON_OPTION) -> None:
    """Revoke a key at once; requests with it are refused from now on."""
    from tokenclub.accounts import keys

    with session_scope() as session:
        view = keys.revoke_key(session, key_id)
    emit(view.as_dict(), json_out, f"API key {view.id}")
