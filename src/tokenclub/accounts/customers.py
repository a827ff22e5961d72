"""Customer accounts: who uses the API and whose ledger accounts its usage moves."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.schema import Customer
from tokenclub.errors import InvalidInputError, NotFoundError
from tokenclub.ledger.posting import balances_by_kind, ensure_customer_accounts


def create_customer(
    session: Session, name: str, *, partner_id: int | None = None, spending_limit_krw: int | None = None
) -> Customer:
    """Open a customer account together with its ledger accounts."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInputError("customer name must be 1..200 characters")
    if spending_limit_krw is not None and spending_limit_krw < 0:
        raise InvalidInputError("spending limit must not be negative")
    customer = Customer(name=clean, partner_id=partner_id, spending_limit_krw=spending_limit_krw)
    session.add(customer)
    session.flush()
    ensure_customer_accounts(session, customer.id)
    return customer


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return customer


def customer_of_partner(session: Session, partner_id: int) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.partner_id == partner_id))
    if customer is None:
        raise NotFoundError(f"partner {partner_id} does not exist")
    return customer


def list_customers(session: Session) -> list[Customer]:
    return list(session.scalars(select(Customer).order_by(Customer.id)))


def balance_summary(session: Session, customer_id: int) -> dict[str, int]:
    """The balances people ask for, all derived from the ledger."""
    get_customer(session, customer_id)
    kinds = balances_by_kind(session, customer_id)
    return {
        "free_tokens_granted": kinds["free_tokens_granted"],
        "free_tokens_used": kinds["free_tokens_used"],
        "free_tokens_left": kinds["free_allowance"],
        "paid_tokens": kinds["paid_tokens"],
        "receivable_krw": kinds["receivable_krw"],
        "payable_krw": kinds["payable_krw"],
        "spending_left_krw": kinds["credit_line_krw"],
    }
