"""Snapshots freeze the accepted documents of partners in training, with per-partner counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.export.homes import SPEC, snapshot, two_partner_home
from tokenclub.accounts import partners
from tokenclub.db.engine import Database
from tokenclub.db.schema import CorpusDocument
from tokenclub.errors import NotFoundError, StateError
from tokenclub.export.snapshot import (
    create_snapshot,
    get_snapshot,
    partner_snapshots,
    snapshot_parts,
    withdrawn_since,
)

THRESHOLD = 100_000_000


@pytest.fixture(scope="module")
def home_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    home = tmp_path_factory.mktemp("snap") / "home"
    db = two_partner_home(home)
    yield home, db
    db.dispose()


def test_snapshot_counts_every_accepted_document_per_partner(home_db: tuple[Path, Database]) -> None:
    _, db = home_db
    view = snapshot(db)
    with db.transaction() as session:
        expected = {
            pid: (docs, tokens)
            for pid, docs, tokens in session.execute(
                select(CorpusDocument.partner_id, func.count(), func.sum(CorpusDocument.tokens)).group_by(
                    CorpusDocument.partner_id
                )
            )
        }
        parts = snapshot_parts(session, view.id)
    assert view.partners == expected
    assert (view.documents, view.tokens) == (57, sum(t for _, t in expected.values()))
    assert [p.partner_id for p in parts].count(1) == 4  # 30 petitions in batches of 8
    assert sum(p.documents for p in parts) == 57
    assert view.tokenizer_fingerprint == SPEC.tokenizer_fingerprint
    assert view.curation["steps"] == ["normalize", "language", "quality", "pii", "dedup_signature", "count"]
    assert view.curation["quality"] == SPEC.quality.model_dump(mode="json")
    assert view.excluded_partners == []


def test_withdrawn_partner_never_enters_a_new_snapshot(tmp_path: Path) -> None:
    db = two_partner_home(tmp_path / "home")
    try:
        before = snapshot(db)
        with db.transaction() as session:
            partners.withdraw(session, 1, THRESHOLD)
        after = snapshot(db)
        with db.transaction() as session:
            assert set(after.partners) == {2} and after.excluded_partners == [1]
            assert after.documents == before.partners[2][0]
            assert {p.partner_id for p in snapshot_parts(session, after.id)} == {2}
            # the older snapshot is unchanged and says who withdrew since
            assert get_snapshot(session, before.id).partners == before.partners
            assert [w["partner_id"] for w in withdrawn_since(session, before.id)] == [1]
            assert withdrawn_since(session, after.id) == []
            # a partner sees only its own line of each snapshot
            mine = partner_snapshots(session, 1)
            assert [(row["snapshot_id"], row["documents"]) for row in mine] == [(before.id, 29)]
            assert [row["snapshot_id"] for row in partner_snapshots(session, 2)] == [before.id, after.id]
            assert set(mine[0]) == {"snapshot_id", "created_at", "documents", "tokens"}
    finally:
        db.dispose()


def test_unknown_and_empty_snapshots_are_clear_errors(db: Database) -> None:
    with db.transaction() as session:
        with pytest.raises(NotFoundError, match="snapshot 999 does not exist"):
            get_snapshot(session, 999)
        with pytest.raises(StateError, match="nothing to snapshot"):
            create_snapshot(session, "trainer-kim", SPEC)
