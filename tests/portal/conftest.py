"""A portal and data API on loopback over a fresh home, with an approved partner and its keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from tests.gateway.fake_upstream import serve_in_thread
from tokenclub.accounts import partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.keys import create_key
from tokenclub.accounts.partners import PartnerStatus
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


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home,
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
    )
    with serve_in_thread(create_portal_app(settings)) as url:
        yield Portal(url, home, db, settings, worker)
    db.dispose()
