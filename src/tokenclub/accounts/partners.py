"""Partner applications, the operator's decision on them, and membership tiers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tokenclub.accounts.customers import create_customer
from tokenclub.accounts.kinds import OrgType as OrgType
from tokenclub.accounts.kinds import PartnerStatus as PartnerStatus
from tokenclub.accounts.kinds import Tier as Tier
from tokenclub.db.schema import Customer, Partner
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, NotFoundError, StateError


def tier_for(accepted_words: int, threshold_words: int) -> Tier:
    """Membership follows accepted Korean words: at or above the threshold makes a member."""
    return Tier.MEMBER if accepted_words >= threshold_words else Tier.CONTRIBUTOR


@dataclass(frozen=True, slots=True)
class PartnerView:
    """What the CLI and API show of a partner."""

    id: int
    name: str
    status: str
    org_type: str
    contact: str
    data_description: str
    accepted_words: int
    tier: str
    customer_id: int
    created_at: datetime
    decided_at: datetime | None
    withdrawn_at: datetime | None = None
    decision_note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "org_type": self.org_type,
            "contact": self.contact,
            "data_description": self.data_description,
            "accepted_words": self.accepted_words,
            "tier": self.tier,
            "customer_id": self.customer_id,
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_note": self.decision_note,
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
        }


def _view(session: Session, partner: Partner, threshold_words: int) -> PartnerView:
    customer_id = session.scalar(select(Customer.id).where(Customer.partner_id == partner.id))
    assert customer_id is not None, "every partner has a customer account"
    return PartnerView(
        id=partner.id,
        name=partner.name,
        status=partner.status,
        org_type=partner.org_type,
        contact=partner.contact,
        data_description=partner.data_description,
        accepted_words=partner.accepted_words,
        tier=tier_for(partner.accepted_words, threshold_words).value,
        customer_id=customer_id,
        created_at=partner.created_at,
        decided_at=partner.decided_at,
        withdrawn_at=partner.withdrawn_at,
        decision_note=partner.decision_note or "",
    )


def apply(
    session: Session,
    name: str,
    *,
    threshold_words: int,
    contact: str = "",
    org_type: str = OrgType.OTHER,
    data_description: str = "",
) -> PartnerView:
    """Record an application; the partner's customer account is opened with it."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise InvalidInputError("partner name must be 1..200 characters")
    if org_type not in set(OrgType):
        raise InvalidInputError(f"org type {org_type!r} is not one of {', '.join(OrgType)}")
    if session.scalar(select(Partner.id).where(Partner.name == clean)) is not None:
        raise InvalidInputError(f"a partner named {clean!r} already exists")
    partner = Partner(
        name=clean,
        contact=contact.strip(),
        org_type=str(org_type),
        data_description=data_description.strip(),
        status=PartnerStatus.APPLIED.value,
        accepted_words=0,
    )
    try:
        with session.begin_nested():
            session.add(partner)
            session.flush()
    except IntegrityError as exc:
        raise InvalidInputError(f"a partner named {clean!r} already exists") from exc
    create_customer(session, clean, partner_id=partner.id)
    return _view(session, partner, threshold_words)


def get_partner(session: Session, partner_id: int) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFoundError(f"partner {partner_id} does not exist")
    return partner


def show(session: Session, partner_id: int, threshold_words: int) -> PartnerView:
    return _view(session, get_partner(session, partner_id), threshold_words)


def list_partners(session: Session, threshold_words: int, status: str | None = None) -> list[PartnerView]:
    query = select(Partner).order_by(Partner.id)
    if status is not None:
        query = query.where(Partner.status == status)
    return [_view(session, p, threshold_words) for p in session.scalars(query)]


def decide(
    session: Session, partner_id: int, status: PartnerStatus, threshold_words: int, note: str = ""
) -> PartnerView:
    """Approve or reject an application; deciding the same way twice is a no-op."""
    partner = get_partner(session, partner_id)
    if partner.status == status:
        return _view(session, partner, threshold_words)
    if partner.status != PartnerStatus.APPLIED:
        raise StateError(f"partner {partner_id} is already {partner.status}")
    partner.status = status.value
    partner.decided_at = utcnow()
    partner.decision_note = note
    session.flush()
    return _view(session, partner, threshold_words)


def withdraw(session: Session, partner_id: int, threshold_words: int) -> PartnerView:
    """An approved partner takes its data out of future training: no more uploads, its text
    leaves the corpus export and, once the caller rebuilds it, the leak-guard index. What it
    earned stays in the ledger. Withdrawing twice is a no-op."""
    partner = get_partner(session, partner_id)
    if partner.status == PartnerStatus.WITHDRAWN:
        return _view(session, partner, threshold_words)
    if partner.status != PartnerStatus.APPROVED:
        raise StateError(f"partner {partner_id} is {partner.status}: only an approved partner can withdraw")
    partner.status = PartnerStatus.WITHDRAWN.value
    partner.withdrawn_at = utcnow()
    session.flush()
    return _view(session, partner, threshold_words)


WITHDRAWN_IDS = select(Partner.id).where(Partner.status == PartnerStatus.WITHDRAWN.value)
"""Partners whose data is out of future training, as a query to run or to filter by."""


def withdrawn_partners(session: Session) -> list[int]:
    """Partners whose data is out of future training (and of the guard index at its rebuild)."""
    return list(session.scalars(WITHDRAWN_IDS.order_by(Partner.id)))


def require_approved(session: Session, partner_id: int) -> Partner:
    partner = get_partner(session, partner_id)
    if partner.status != PartnerStatus.APPROVED:
        raise StateError(f"partner {partner_id} is not approved (status {partner.status})")
    return partner
