"""Partner applications, decisions and membership tiers."""

from __future__ import annotations

import pytest

from tokenclub.accounts import partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.partners import PartnerStatus, Tier, tier_for
from tokenclub.db.engine import Database
from tokenclub.errors import InvalidInputError, NotFoundError, StateError

THRESHOLD = 100_000_000


def test_application_opens_a_customer_account(db: Database) -> None:
    with db.transaction() as session:
        view = partners.apply(session, "  국립중앙도서관 ", threshold_words=THRESHOLD, org_type="public")
        assert customer_of_partner(session, view.id).id == view.customer_id
    assert (view.name, view.status, view.tier, view.org_type) == (
        "국립중앙도서관",
        "applied",
        "contributor",
        "public",
    )


def test_approve_and_reject_follow_the_state_machine(db: Database) -> None:
    with db.transaction() as session:
        a = partners.apply(session, "A", threshold_words=THRESHOLD).id
        b = partners.apply(session, "B", threshold_words=THRESHOLD).id
    with db.transaction() as session:
        assert partners.decide(session, a, PartnerStatus.APPROVED, THRESHOLD).status == "approved"
        assert partners.decide(session, a, PartnerStatus.APPROVED, THRESHOLD).status == "approved"
        assert partners.decide(session, b, PartnerStatus.REJECTED, THRESHOLD, "no data").status == "rejected"
    with pytest.raises(StateError, match=r"partner \d+ is already approved"), db.transaction() as session:
        partners.decide(session, a, PartnerStatus.REJECTED, THRESHOLD)
    with pytest.raises(StateError, match="not approved"), db.transaction() as session:
        partners.require_approved(session, b)
    with db.transaction() as session:
        assert [v.status for v in partners.list_partners(session, THRESHOLD)] == ["approved", "rejected"]
        assert [v.id for v in partners.list_partners(session, THRESHOLD, "rejected")] == [b]


def test_bad_applications_are_refused(db: Database) -> None:
    with db.transaction() as session:
        partners.apply(session, "중복", threshold_words=THRESHOLD)
    with pytest.raises(InvalidInputError, match="already exists"), db.transaction() as session:
        partners.apply(session, "중복", threshold_words=THRESHOLD)
    with pytest.raises(InvalidInputError, match=r"1\.\.200"), db.transaction() as session:
        partners.apply(session, "   ", threshold_words=THRESHOLD)
    with pytest.raises(InvalidInputError, match="org type 'bank'"), db.transaction() as session:
        partners.apply(session, "X", threshold_words=THRESHOLD, org_type="bank")
    with pytest.raises(NotFoundError, match="partner 404"), db.transaction() as session:
        partners.show(session, 404, THRESHOLD)


@pytest.mark.parametrize(
    ("words", "tier"),
    [
        (0, Tier.CONTRIBUTOR),
        (99_999_999, Tier.CONTRIBUTOR),
        (100_000_000, Tier.MEMBER),
        (10**12, Tier.MEMBER),
    ],
)
def test_tier_threshold_is_inclusive(words: int, tier: Tier) -> None:
    assert tier_for(words, THRESHOLD) is tier
