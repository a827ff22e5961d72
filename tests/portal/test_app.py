"""`tokenclub serve` carries the portal and the data API beside the gateway's endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenclub.gateway.asgi import make_app
from tokenclub.home import init_home
from tokenclub.settings import get_settings


def test_gateway_app_mounts_the_portal_and_the_data_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENCLUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TOKENCLUB_UPSTREAM_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    try:
        init_home(get_settings())
        app = make_app()
        client = TestClient(app)  # no lifespan: nothing but routing is exercised
        login = client.get("/portal/login")
        upload = client.post("/v1/uploads", json={"bytes": 1, "filename": "a"})
        chat = client.post("/v1/chat/completions", json={})
        static = client.get("/portal/static/upload.js")
        app.state.portal.db.dispose()
    finally:
        get_settings.cache_clear()
    assert login.status_code == 200 and 'lang="ko"' in login.text
    assert upload.status_code == 401 and upload.headers["x-request-id"].startswith("req_")
    assert chat.status_code == 401 and chat.json()["error"]["code"] == "invalid_api_key"
    assert static.status_code == 200 and "XMLHttpRequest" in static.text


def test_session_cookie_is_secure_http_only_and_scoped_by_default(tmp_path: Path) -> None:
    import re

    from tokenclub.accounts.users import Role, add_user
    from tokenclub.db.engine import Database
    from tokenclub.portal.app import create_portal_app
    from tokenclub.settings import Settings

    settings = Settings(home=tmp_path / "home")
    init_home(settings)
    db = Database(settings.resolved_database_url)
    with db.transaction() as session:
        add_user(session, "op@x.kr", "operator password", Role.OPERATOR)
    db.dispose()
    app = create_portal_app(settings)
    with TestClient(app, base_url="https://portal.example") as client:
        form = client.get("/portal/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        assert "secure" in form.headers["set-cookie"].lower()  # the pre-login CSRF cookie too
        opened = client.post(
            "/portal/login",
            data={"csrf_token": token.group(1), "email": "op@x.kr", "password": "operator password"},
            follow_redirects=False,
        )
    cookie = opened.headers["set-cookie"].lower()
    assert opened.status_code == 303 and cookie.startswith("tc_session=")
    assert all(flag in cookie for flag in ("secure", "httponly", "samesite=lax", "path=/portal"))
