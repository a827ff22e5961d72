"""A portal and data API on loopback over a fresh home, with an approved partner and its keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, _pg_available
from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.accounts import partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.atrest.objects import sealing_for
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.home import init_home
from tokenclub.jobs.worker import WorkerConfig
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.portal.app import create_portal_app
from tokenclub.settings import Settings
from tokenclub.tokenizer_store import default_tokenizer_path

THRESHOLD = 100_000_000
PART_LIMIT = 256 * 1024
UPLOAD_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Portal:
    url: str
    home: Path
    db: Database
    settings: Settings
    worker: WorkerConfig


@dataclass(frozen=True)
class PartnerKeys:
    partner_id: int
    data: str
    inference: str


def make_partner(db: Database, name: str) -> PartnerKeys:
    with db.transaction() as session:
        pid = partners.apply(session, name, threshold_words=THRESHOLD).id
        partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
        customer = customer_of_partner(session, pid)
        data, _ = create_key(session, customer.id, "uploader", ["data", "account"])
        inference, _ = create_key(session, customer.id, "app")
    return PartnerKeys(pid, data, inference)


@contextmanager
def _database_url(backend: str, home: Path) -> Iterator[str | None]:
    """None (the home's SQLite file), or a PostgreSQL database of the module's own, dropped after."""
    if backend == "sqlite":
        yield None
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"tc_portal_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal over a fresh home, on each database backend."""
    home = tmp_path_factory.mktemp("home")
    with _database_url(request.param, home) as url:
        yield from _serve(home, url)


@pytest.fixture(scope="module")
def sqlite_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal on the embedded SQLite default only (the browser tests)."""
    yield from _serve(tmp_path_factory.mktemp("home"), None)


def _serve(home: Path, database_url: str | None) -> Iterator[Portal]:
    settings = Settings(
        home=home,
        database_url=database_url,
        upload_max_bytes=UPLOAD_LIMIT,
        upload_part_max_bytes=PART_LIMIT,
        cookie_secure=False,
        member_threshold_words=THRESHOLD,
    )
    init_home(settings)
    db = Database(settings.resolved_database_url)
    worker = WorkerConfig(
        home=home,
        spec=PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings()),
        credit_ratio=Fraction(1),
        batch_size=16,
        workers=1,
        store_url=None,
        sealing=sealing_for(settings),
    )
    with serve_in_thread(create_portal_app(settings)) as url:
        yield Portal(url, home, db, settings, worker)
    db.dispose()


CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the portal's browser tests (never a downloaded one).

    Package scope, not session: Playwright's sync API keeps an event loop running in the
    thread while it is open, and a test worker that goes on to other packages' files must be
    able to call `asyncio.run` there."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing in CI (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as play:
        launched = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()
