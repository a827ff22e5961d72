"""Portal pages over plain HTTP: CSRF on public forms, throttled logins, roles on every route."""

from __future__ import annotations

import re

import httpx

from tests.portal.conftest import Portal, make_partner
from tokenclub.accounts.users import Role, add_user
from tokenclub.portal.sessions import THROTTLE_FAILURES

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _browser(portal: Portal) -> httpx.Client:
    return httpx.Client(base_url=portal.url, follow_redirects=False)


def _token(client: httpx.Client, path: str) -> str:
    found = TOKEN.search(client.get(path).text)
    assert found is not None
    return found.group(1)


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    token = _token(client, "/portal/login")
    return client.post("/portal/login", data={"csrf_token": token, "email": email, "password": password})


def test_public_forms_need_their_csrf_token_and_name_bad_fields(portal: Portal) -> None:
    with _browser(portal) as client:
        missing = client.post("/portal/login", data={"email": "a@b.kr", "password": "x"})
        assert missing.status_code == 403 and "CSRF" in missing.text
        token = _token(client, "/portal/apply")
        base = {"csrf_token": token, "org_name": "신문", "email": "a@b.kr", "password": "0123456789"}
        no_licence = client.post("/portal/apply", data=base)
        assert no_licence.status_code == 400 and "licence: the terms must be accepted" in no_licence.text
        bad_words = client.post("/portal/apply", data={**base, "licence": "yes", "estimated_words": "many"})
        assert bad_words.status_code == 400 and "estimated_words" in bad_words.text
        english = client.get("/portal/apply?lang=en")
        assert 'lang="en"' in english.text and "Organisation" in english.text
        assert 'lang="ko"' in client.get("/portal/login").text  # Korean first, English when chosen


def test_logins_are_throttled_after_repeated_failures(portal: Portal) -> None:
    with portal.db.transaction() as session:
        add_user(session, "slow@x.kr", "the right password", Role.TRAINER)
    with _browser(portal) as client:
        for _ in range(THROTTLE_FAILURES):
            assert _login(client, "slow@x.kr", "wrong password").status_code == 401
        throttled = _login(client, "slow@x.kr", "the right password")
        assert throttled.status_code == 429 and "too many failed logins" in throttled.text


def test_roles_are_checked_on_every_route(portal: Portal) -> None:
    keys = make_partner(portal.db, "역할신문")
    with portal.db.transaction() as session:
        add_user(session, "member@x.kr", "member password", Role.PARTNER_MEMBER, partner_id=keys.partner_id)
        add_user(session, "trainer@x.kr", "trainer password", Role.TRAINER)
    with _browser(portal) as member:
        opened = _login(member, "member@x.kr", "member password")
        assert opened.status_code == 303 and opened.headers["location"] == "/portal/partner"
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        token = _token(member, "/portal/partner/keys")
        refused = member.post(
            "/portal/partner/keys", data={"csrf_token": token, "name": "x", "scope": "data"}
        )
        assert refused.status_code == 403 and "partner_member" in refused.text
        assert member.get("/portal/ops").status_code == 403
        assert member.get("/portal/partner").status_code == 200
    with _browser(portal) as trainer:
        assert _login(trainer, "trainer@x.kr", "trainer password").headers["location"] == "/portal/trainer"
        for path in ("/portal/partner", "/portal/partner/uploads", "/portal/ops/audit", "/portal/ops/users"):
            assert trainer.get(path).status_code == 403, path
    with _browser(portal) as anonymous:
        for path in ("/portal/partner", "/portal/ops", "/portal/trainer"):
            response = anonymous.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/portal/login", path


def test_usage_by_day_and_key_shows_only_the_partners_own(portal: Portal) -> None:
    from sqlalchemy import select

    from tokenclub.accounts.customers import customer_of_partner
    from tokenclub.db.schema import ApiKey, UsageEvent

    keys = make_partner(portal.db, "사용량신문")
    other = make_partner(portal.db, "남의신문")
    with portal.db.transaction() as session:
        add_user(session, "usage@x.kr", "usage password", Role.PARTNER_MEMBER, partner_id=keys.partner_id)
        for n, partner in enumerate((keys.partner_id, keys.partner_id, other.partner_id)):
            customer = customer_of_partner(session, partner).id
            key_id = session.scalars(select(ApiKey.id).where(ApiKey.customer_id == customer)).first()
            session.add(
                UsageEvent(
                    request_id=f"usage-{partner}-{n}",
                    customer_id=customer,
                    key_id=key_id,
                    model="m",
                    endpoint="chat",
                    prompt_tokens=100 * (n + 1),
                    completion_tokens=7,
                    krw=3,
                    status="ok",
                )
            )
    with _browser(portal) as client:
        _login(client, "usage@x.kr", "usage password")
        page = client.get("/portal/partner/usage").text
    assert "<td>2</td><td>314</td><td>6</td>" in page.replace("\n", "")  # 2 requests, 107 + 207 tokens, 6 KRW
    assert "407" not in page  # the other partner's request
