"""A home with two partners' petitions ingested, and a snapshot/export helper for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.guard.homes import make_home
from tests.ingest.fixtures import petitions
from tokenclub.corpus.store import CorpusStore
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.export.access import Role
from tokenclub.export.run import ExportRequest, run_export
from tokenclub.export.snapshot import SnapshotView, create_snapshot
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

SPEC = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())


def two_partner_home(home: Path) -> Database:
    """Partner 1: petitions 0-29, partner 2: petitions 30-59 (29 and 28 accepted)."""
    return make_home(home, [petitions(0, 30), petitions(30, 30)])


def snapshot(db: Database, actor: str = "trainer-kim") -> SnapshotView:
    with db.transaction() as session:
        return create_snapshot(session, actor, SPEC)


def export(db: Database, home: Path, request: ExportRequest) -> dict[str, Any]:
    return run_export(
        db,
        CorpusStore(home / "corpus"),
        str(home / "exports"),
        default_tokenizer_path(),
        "trainer-kim",
        Role.TRAINER,
        request,
    )
