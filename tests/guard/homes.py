"""A home prepared in-process as `tokenclub init` and `tokenclub ingest` would leave it.

The CLI tests then run only the commands under test as subprocesses (each costs a second of
start-up on this machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from tests.ingest.fixtures import write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.home import init_home
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.settings import Settings
from tokenclub.tokenizer_store import default_tokenizer_path

THRESHOLD = 100_000_000


def make_home(home: Path, uploads: Sequence[Sequence[dict[str, str]]]) -> Database:
    """Partner i + 1 contributes `uploads[i]` (petition rows); returns the home's database."""
    settings = Settings(home=home, database_url=None)
    init_home(settings)
    db = Database(settings.resolved_database_url)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    for number, rows in enumerate(uploads, 1):
        with db.transaction() as session:
            pid = partners.apply(session, f"P{number}", threshold_words=THRESHOLD).id
            partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
        upload = write_jsonl(home.parent / f"upload-{number}.jsonl", list(rows))
        ingest(db, home, IngestJob(pid, (upload,), spec, Fraction(1), batch_size=8, workers=1))
    return db
