"""The operator console's revenue and cost records: a void per open-period record, CSRF, roles, audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from tests.portal.conftest import Portal, make_partner
from tokenclub.accounts import audit
from tokenclub.accounts.users import Role, add_user
from tokenclub.db.portal_schema import AuditEntry
from tokenclub.db.settlement_schema import SettlementRecordVoid
from tokenclub.ledger.pricing import PriceList
from tokenclub.settlement.periods import RecordKind, add_record, get_period, record_totals
from tokenclub.settlement.settle import Terms, close_period

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
OPERATOR, PARTNER, PASSWORD = "books@coop.kr", "desk@paper.kr", "a long enough password"
TERMS = Terms(Decimal("0.3"), 1_000, PriceList(2_000, 8_000))


def _browser(portal: Portal) -> httpx.Client:
    return httpx.Client(base_url=portal.url, follow_redirects=False)


def _login(client: httpx.Client, email: str) -> str:
    found = TOKEN.search(client.get("/portal/login").text)
    assert found is not None
    opened = client.post("/portal/login", data={"csrf_token": found[1], "email": email, "password": PASSWORD})
    assert opened.status_code == 303
    return str(opened.headers["location"])


def _counts(portal: Portal) -> tuple[int, int]:
    with portal.db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(SettlementRecordVoid)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def test_an_operator_voids_an_open_periods_record_and_the_audit_keeps_before_and_after(
    portal: Portal,
) -> None:
    keys = make_partner(portal.db, "장부신문")
    with portal.db.transaction() as session:
        operator = add_user(session, OPERATOR, PASSWORD, Role.OPERATOR).id
        add_user(session, PARTNER, PASSWORD, Role.PARTNER_ADMIN, partner_id=keys.partner_id)
        closed = add_record(session, "2020-02", RecordKind.COST, 5, "closed month").id
        close_period(session, "2020-02", TERMS, now=datetime(2020, 3, 2, tzinfo=UTC))
        revenue = add_record(session, "2020-03", RecordKind.REVENUE, 400_000, "contract").id
        wrong = add_record(session, "2020-03", RecordKind.COST, 100_000, "wrong invoice").id
    void_path = f"/portal/ops/settlement/records/{wrong}/void"
    form = {"kind": "cost", "reason": "another company's invoice"}

    with _browser(portal) as partner:
        assert _login(partner, PARTNER) == "/portal/partner"
        token = TOKEN.search(partner.get("/portal/partner").text)
        assert token is not None
        refused = partner.post(void_path, data={**form, "csrf_token": token[1]})
        assert refused.status_code == 403 and "partner_admin" in refused.text
        assert partner.get("/portal/ops/settlement").status_code == 403

    with _browser(portal) as console:
        assert _login(console, OPERATOR) == "/portal/ops"
        listing = console.get("/portal/ops/settlement")
        assert listing.status_code == 200
        assert f'action="/portal/ops/settlement/records/{revenue}/void"' in listing.text
        assert f'action="{void_path}"' in listing.text
        assert f"/records/{closed}/void" not in listing.text  # a closed period offers no void
        token = TOKEN.search(listing.text)
        assert token is not None
        no_csrf = console.post(void_path, data=form)
        assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
        assert _counts(portal) == (0, 0)

        voided = console.post(void_path, data={**form, "csrf_token": token[1]})
        assert voided.status_code == 303 and voided.headers["location"] == "/portal/ops/settlement"
        page = console.get("/portal/ops/settlement").text
        assert "another company&#39;s invoice" in page and f'action="{void_path}"' not in page
        with portal.db.transaction() as session:
            totals = record_totals(session, get_period(session, "2020-03"))
            (entry,) = audit.entries(session)
        assert (totals[RecordKind.REVENUE], totals[RecordKind.COST]) == (400_000, 0)
        assert (entry.actor_user_id, entry.action, entry.target) == (
            operator,
            "settlement.cost.void",
            f"record:{wrong}",
        )
        assert {k: entry.before[k] for k in ("id", "krw", "note", "status", "voided_by")} == {
            "id": wrong,
            "krw": 100_000,
            "note": "wrong invoice",
            "status": "counted",
            "voided_by": None,
        }
        assert {k: entry.after[k] for k in ("id", "krw", "status", "voided_by", "void_reason")} == {
            "id": wrong,
            "krw": 100_000,
            "status": "voided",
            "voided_by": f"user:{operator} {OPERATOR}",
            "void_reason": "another company's invoice",
        }
        assert _counts(portal) == (1, 1)

        twice = console.post(void_path, data={**form, "csrf_token": token[1]})
        assert twice.status_code == 409 and f"record {wrong} was already voided" in twice.text
        late = console.post(
            f"/portal/ops/settlement/records/{closed}/void",
            data={"kind": "cost", "reason": "too late", "csrf_token": token[1]},
        )
        assert late.status_code == 409 and "period 2020-02 is closed" in late.text
        blank = console.post(
            f"/portal/ops/settlement/records/{revenue}/void",
            data={"kind": "revenue", "reason": "  ", "csrf_token": token[1]},
        )
        assert blank.status_code == 400 and "reason" in blank.text
        assert _counts(portal) == (1, 1)
