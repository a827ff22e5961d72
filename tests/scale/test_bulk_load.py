"""A bulk load gives the receipts, credits, kept documents and indexes of ingesting upload by upload."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.ingest.fixtures import disguise, petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.customers import customer_of_partner
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.dump import iter_corpus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import DedupBand
from tokenclub.errors import StateError
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.ledger.posting import balances_by_kind
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.scale.bulk_load import Contribution, bulk_load
from tokenclub.scale.runtime import RayRuntime
from tokenclub.tokenizer_store import default_tokenizer_path


def _uploads(folder: Path) -> list[tuple[str, Path]]:
    """Three uploads by two partners, each copying (exactly or disguised) from the ones before."""
    first, second, third = petitions(0, 30), petitions(30, 30), petitions(60, 30)
    second += [first[2], {**first[5], "content": disguise(first[5]["content"])}]
    third += [second[4], first[7], {**second[9], "content": disguise(second[9]["content"])}, third[0]]
    return [
        ("a", write_jsonl(folder / "a1" / "part.jsonl", first)),
        ("b", write_jsonl(folder / "b1" / "part.jsonl", second)),
        ("a", write_jsonl(folder / "a2" / "part.jsonl", third)),
    ]


def _partners(db: Database) -> dict[str, int]:
    ids = {}
    with db.transaction() as session:
        for name in ("a", "b"):
            ids[name] = partners.apply(session, name, threshold_words=1).id
            partners.decide(session, ids[name], PartnerStatus.APPROVED, 1)
    return ids


def _outcome(db: Database, home: Path, ids: dict[str, int], receipts: list[dict[str, Any]]) -> dict[str, Any]:
    """What the partners got, by partner name: ids differ between databases (and so do the
    upload and document ids derived from them), the rest must not."""
    names = {pid: name for name, pid in ids.items()}
    with db.transaction() as session:
        balances = {
            name: balances_by_kind(session, customer_of_partner(session, pid).id) for name, pid in ids.items()
        }
        bands = session.scalar(select(func.count()).select_from(DedupBand))
    kept = sorted((names[doc["partner_id"]], doc["source"], doc["text"]) for doc in iter_corpus(db, home))
    stripped = [
        {**{k: v for k, v in r.items() if k != "upload_id"}, "partner_id": names[r["partner_id"]]}
        for r in receipts
    ]
    return {"receipts": stripped, "balances": balances, "kept": kept, "band_rows": bands}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_bulk_load_credits_like_upload_by_upload(
    tmp_path: Path, ray_runtime: RayRuntime, request: pytest.FixtureRequest, backend: str
) -> None:
    """On PostgreSQL the uploads commit on several threads at once; the outcome is the same."""
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    uploads = _uploads(tmp_path / "in")

    one_by_one = Database(f"sqlite:///{tmp_path / 'incremental.db'}")
    upgrade(one_by_one.engine)
    ids = _partners(one_by_one)
    receipts = [
        ingest(
            one_by_one,
            tmp_path / "home1",
            IngestJob(ids[who], (path,), spec, Fraction(1), batch_size=8, workers=1),
        )
        for who, path in uploads
    ]
    expected = _outcome(one_by_one, tmp_path / "home1", ids, receipts)
    one_by_one.dispose()

    if backend == "sqlite":
        bulk = Database(f"sqlite:///{tmp_path / 'bulk.db'}")
        upgrade(bulk.engine)
    else:
        bulk = request.getfixturevalue("pg_db")
    ids = _partners(bulk)
    contributions = [Contribution(ids[who], (path,)) for who, path in uploads]
    loaded = bulk_load(
        bulk, tmp_path / "home2", contributions, spec, Fraction(1), batch_size=8, workers=1, parts=4
    )
    if backend == "sqlite":  # fresh databases on both sides: the same partner, upload and document ids
        assert loaded == receipts
    assert [r["rejected"].get("dedup:duplicate of an earlier contribution", 0) for r in loaded] == [0, 2, 4]
    assert sum(r["free_tokens_granted"] for r in loaded) > 0
    assert _outcome(bulk, tmp_path / "home2", ids, loaded) == expected

    with pytest.raises(StateError, match="empty corpus index"):
        bulk_load(bulk, tmp_path / "home2", contributions, spec, Fraction(1), batch_size=8, workers=1)
    if backend == "sqlite":
        bulk.dispose()
