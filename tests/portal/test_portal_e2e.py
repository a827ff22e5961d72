"""The portal end to end in real Chromium (Debian's, driven by Playwright): apply → approve →
log in → upload with the progress bar → the receipt with a rejected duplicate and its reason →
a statement download; and a second partner who cannot reach any of it by URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import delete

from tests.ingest.fixtures import petitions, write_jsonl
from tests.portal.conftest import Portal
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.accounts.users import Role, add_user
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.db.portal_schema import PortalSession
from tokenclub.jobs.worker import work
from tokenclub.settlement.periods import month_bounds, open_period

OPERATOR = ("ops@tokenclub.kr", "operator password 1")
PARTNER = ("data@hankyoreh.example", "partner password 1")
OTHER = ("data@other.example", "other password 12")

pytestmark = pytest.mark.slow


def _login(page: Page, portal: Portal, email: str, password: str) -> None:
    page.goto(portal.url + "/portal/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/portal/login'] button")


def _status(page: Page, url: str) -> int:
    response = page.goto(url)
    assert response is not None
    return response.status


def test_partner_journey_and_isolation(sqlite_portal: Portal, browser: Browser, tmp_path: Path) -> None:
    portal = sqlite_portal
    with portal.db.transaction() as session:
        add_user(session, OPERATOR[0], OPERATOR[1], Role.OPERATOR)
        open_period(session, "2026-01", *month_bounds("2026-01"))
    applicant = browser.new_context(locale="ko-KR")
    page = applicant.new_page()

    page.goto(portal.url + "/portal/apply")
    assert page.locator("html").get_attribute("lang") == "ko"
    page.fill("#org_name", "한겨레신문")
    page.select_option("#org_type", "media")
    page.fill("#contact_name", "김기자")
    page.fill("#email", PARTNER[0])
    page.fill("#password", PARTNER[1])
    page.fill("#data_description", "1988년부터의 기사")
    page.fill("#estimated_words", "120,000,000")
    page.check("#licence")
    page.click("form[action='/portal/apply'] button")
    page.wait_for_selector("#applied")

    _login(page, portal, *PARTNER)
    page.wait_for_url("**/portal/status")
    assert "(applied)" in page.inner_text("#application-status")

    console = browser.new_context().new_page()
    _login(console, portal, *OPERATOR)
    console.wait_for_url("**/portal/ops")
    console.goto(portal.url + "/portal/ops/applications?lang=en")
    row = console.locator("tr", has_text="한겨레신문")
    assert "120,000,000" in row.inner_text()
    row.locator("input[name=note]").fill("환영합니다")
    row.locator("button[value=approve]").click()
    console.wait_for_url("**/portal/ops/applications")
    assert "approved" in console.locator("tr", has_text="한겨레신문").inner_text()

    rows = petitions(200, 12)
    rows.append(dict(max(rows, key=lambda r: len(json.dumps(r)))))
    upload = write_jsonl(tmp_path / "기사.jsonl", rows)
    page.goto(portal.url + "/portal/partner/uploads")
    page.set_input_files("#upload-file", str(upload))
    page.click("#upload-start")
    page.wait_for_selector("#upload-done")
    assert page.get_attribute("#upload-progress", "value") == "100"
    contribution_url = page.get_attribute("#upload-done", "href")
    assert contribution_url is not None
    assert work(portal.db, portal.worker, "e2e", once=True) == 1
    page.click("#upload-done")
    assert page.inner_text("#contribution-status") == "done"
    rejected = page.locator("#decisions tr.rejected", has_text=DUPLICATE_REASON)
    assert rejected.count() == 1 and "거부" in rejected.inner_text()

    console.goto(portal.url + "/portal/ops/settlement")
    console.fill("#c-period", "2026-01")
    console.click("form[action='/portal/ops/settlement/close'] button")
    console.wait_for_url("**/portal/ops/settlement")
    console.goto(portal.url + "/portal/ops/audit")
    audit_text = console.inner_text("#audit")
    assert (
        "application.approve" in audit_text
        and "settlement.close" in audit_text
        and "환영합니다" in audit_text
    )

    page.goto(portal.url + "/portal/partner/statements")
    with page.expect_download() as download:
        page.click("a[href$='/2026-01/csv']")
    csv = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "한겨레신문" in csv and "2026-01" in csv

    with portal.db.transaction() as session:
        other = partners.apply(session, "다른신문", threshold_words=1).id
        partners.decide(session, other, PartnerStatus.APPROVED, 1)
        add_user(session, OTHER[0], OTHER[1], Role.PARTNER_ADMIN, partner_id=other)
    intruder = browser.new_context().new_page()
    _login(intruder, portal, *OTHER)
    intruder.wait_for_url("**/portal/partner")
    assert _status(intruder, portal.url + contribution_url) == 404
    assert _status(intruder, portal.url + contribution_url + ".json") == 404
    assert _status(intruder, portal.url + "/portal/ops/applications") == 403
    assert _status(intruder, portal.url + "/portal/partner/uploads") == 200
    assert "한겨레" not in intruder.content()
    upload_id = contribution_url.rsplit("/", 1)[-1]
    sneaky = intruder.request.post(
        portal.url + f"/portal/partner/uploads/{upload_id}/complete",
        data={"part_ids": ["x"]},
        headers={"X-CSRF-Token": intruder.locator("input[name=csrf_token]").first.input_value()},
    )
    assert sneaky.status == 404

    no_csrf = page.request.post(portal.url + "/portal/partner/keys", form={"name": "x", "scope": "data"})
    assert no_csrf.status == 403 and "CSRF" in no_csrf.text()

    with portal.db.transaction() as session:
        session.execute(delete(PortalSession))
    page.goto(portal.url + "/portal/partner/keys")
    page.wait_for_url("**/portal/login?expired=1")
    assert page.locator("p.notice").count() == 1
