"""The trainer's pages over real HTTP: roles, CSRF, an export created from the form, every file
downloaded byte for byte from the store, each download in the export log; partners see only
the snapshots and models of their own data."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.export.homes import two_partner_home
from tests.gateway.fake_upstream import serve_in_thread
from tests.portal.test_web import _login, _token
from tokenclub.accounts import partners
from tokenclub.accounts.users import Role, add_user
from tokenclub.db.engine import Database
from tokenclub.export.access import read_log
from tokenclub.export.registry import register_model
from tokenclub.portal.app import create_portal_app
from tokenclub.settings import Settings

PASSWORD = "correct horse battery"
TRAINER, OPERATOR, PARTNER, OTHER = "kim@lab.kr", "ops@coop.kr", "desk@p1.kr", "desk@p2.kr"


@dataclass(frozen=True)
class Site:
    url: str
    home: Path
    db: Database


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two partners' petitions ingested (57 documents), a trainer, an operator and partner staff."""
    home = tmp_path_factory.mktemp("trainer") / "home"
    db = two_partner_home(home)
    with db.transaction() as session:
        add_user(session, TRAINER, PASSWORD, Role.TRAINER)
        add_user(session, OPERATOR, PASSWORD, Role.OPERATOR)
        add_user(session, PARTNER, PASSWORD, Role.PARTNER_ADMIN, partner_id=1)
        add_user(session, OTHER, PASSWORD, Role.PARTNER_ADMIN, partner_id=2)
    settings = Settings(home=home, database_url=None, cookie_secure=False)
    with serve_in_thread(create_portal_app(settings)) as url:
        yield Site(url, home, db)
    db.dispose()


def _anonymous(site: Site) -> httpx.Client:
    return httpx.Client(base_url=site.url, follow_redirects=False)


@contextmanager
def _client(site: Site, email: str) -> Iterator[httpx.Client]:
    with _anonymous(site) as client:
        assert _login(client, email, PASSWORD).status_code == 303
        yield client


def _create(client: httpx.Client, **fields: str | list[str]) -> httpx.Response:
    token = _token(client, "/portal/trainer")
    return client.post("/portal/trainer/exports", data={"csrf_token": token, **fields})


def test_logged_out_visitors_are_sent_to_the_login_page(site: Site) -> None:
    with _anonymous(site) as anonymous:
        for path in (
            "/portal/trainer",
            "/portal/trainer/exports/1",
            "/portal/trainer/exports/1/files/manifest.json",
        ):
            response = anonymous.get(path)
            assert (response.status_code, response.headers["location"]) == (303, "/portal/login"), path
        assert anonymous.post("/portal/trainer/exports", data={"formats": "parquet"}).status_code == 303


def test_trainer_exports_downloads_every_file_and_each_download_is_logged(site: Site) -> None:
    with _client(site, TRAINER) as trainer:
        assert trainer.post("/portal/trainer/exports", data={"formats": "parquet"}).status_code == 403
        bad_size = _create(trainer, formats=["parquet"], shard_size="lots")
        assert (
            bad_size.status_code == 400
            and "shard_size &#39;lots&#39; is not a positive size" in bad_size.text
        )
        assert "formats: choose at least one" in _create(trainer, shard_size="1MiB").text
        assert _create(trainer, formats=["csv"]).status_code == 400

        created = _create(trainer, formats=["parquet", "megatron"], shard_size="50kB", seed="7")
        assert (created.status_code, created.headers["location"]) == (303, "/portal/trainer/exports/1")
        detail = trainer.get("/portal/trainer/exports/1")
        assert detail.status_code == 200
        paths = re.findall(r'href="/portal/trainer/exports/1/files/([^"]+)"', detail.text)
        root = site.home / "exports" / "export-000001"
        on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        assert sorted(paths) == on_disk and "manifest.json" in paths and "provenance.parquet" in paths
        assert sum(p.endswith(".parquet") and p != "provenance.parquet" for p in paths) >= 2  # 50 kB shards
        for path in paths:
            got = trainer.get(f"/portal/trainer/exports/1/files/{path}")
            expected = (root / path).read_bytes()
            assert got.status_code == 200 and got.content == expected, path
            assert got.headers["x-checksum-sha256"] == hashlib.sha256(expected).hexdigest()
            assert int(got.headers["content-length"]) == len(expected)
        listing = trainer.get("/portal/trainer").text
        assert "parquet: " in listing and "megatron: " in listing
        assert trainer.get("/portal/trainer/exports/1/files/..%2F..%2Fportal.db").status_code == 404
        assert trainer.get("/portal/trainer/exports/1/files/nothing.bin").status_code == 404
        assert trainer.get("/portal/trainer/exports/9").status_code == 404

    with site.db.transaction() as session:
        log = list(reversed(read_log(session)))
    assert [(e["actor"], e["role"], e["action"]) for e in log[:2]] == [
        (TRAINER, "trainer", "snapshot"),
        (TRAINER, "trainer", "export"),
    ]
    downloads = [e for e in log if e["action"] == "download"]
    assert sorted(e["detail"]["file"] for e in downloads) == sorted(paths)
    assert all(e["export_id"] == 1 and e["snapshot_id"] == 1 and e["actor"] == TRAINER for e in downloads)
    assert {e["detail"]["file"]: e["detail"]["bytes"] for e in downloads} == {
        p: (root / p).stat().st_size for p in paths
    }


def test_partners_never_reach_the_trainer_routes_and_see_only_their_own_snapshots(site: Site) -> None:
    with _client(site, OPERATOR) as operator:
        created = _create(operator, formats=["mds"], snapshot="")
        assert created.status_code == 303
        export_id = int(created.headers["location"].rsplit("/", 1)[1])
        assert operator.get("/portal/trainer").status_code == 200
    with site.db.transaction() as session:
        register_model(session, "ko-llm-1", 1, TRAINER, "ko-chat")
        partners.withdraw(session, 2, 100_000_000)
    with _client(site, PARTNER) as partner:
        for path in (
            "/portal/trainer",
            f"/portal/trainer/exports/{export_id}",
            f"/portal/trainer/exports/{export_id}/files/manifest.json",
        ):
            assert partner.get(path).status_code == 403, path
        token = _token(partner, "/portal/partner")
        refused = partner.post("/portal/trainer/exports", data={"csrf_token": token, "formats": "parquet"})
        assert refused.status_code == 403
        dashboard = partner.get("/portal/partner?lang=en").text
        assert "Snapshots your data went into" in dashboard
        assert re.search(r"Snapshot 1 \(\d{4}-\d\d-\d\d\): 29 Documents", dashboard)
        assert "ko-llm-1" in dashboard and "ko-chat" in dashboard
        assert ": 28 Documents" not in dashboard  # partner 2's counts never show
    with _client(site, TRAINER) as trainer:
        listing = trainer.get("/portal/trainer").text
        assert "partner(s) 2 withdrew after this snapshot" in listing


@pytest.mark.slow
def test_trainer_creates_and_downloads_an_export_in_chromium(site: Site, browser: Browser) -> None:
    context = browser.new_context(locale="en-GB", accept_downloads=True)
    page = context.new_page()
    page.goto(site.url + "/portal/login")
    page.fill("#email", TRAINER)
    page.fill("#password", PASSWORD)
    page.click("form[action='/portal/login'] button")
    page.wait_for_url("**/portal/trainer")
    page.check("#format-mds")
    page.uncheck("#format-parquet")
    page.fill("#shard_size", "20kB")
    page.click("form[action='/portal/trainer/exports'] button")
    page.wait_for_url(re.compile(r".*/portal/trainer/exports/\d+$"))
    export_id = int(page.url.rsplit("/", 1)[1])
    root = site.home / "exports" / f"export-{export_id:06d}"
    with page.expect_download() as info:
        page.click("a[href$='/files/manifest.json']")
    saved = info.value.path()
    assert saved is not None and Path(saved).read_bytes() == (root / "manifest.json").read_bytes()
    assert page.locator("a[href*='/files/mds/']").count() >= 2
    context.close()
