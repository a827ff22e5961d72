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
