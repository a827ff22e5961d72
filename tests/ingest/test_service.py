"""Ingest end to end in-process: counted once, across partners, reproducibly."""

from __future__ import annotations

import io
import json
import os
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.ingest.fixtures import disguise, petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.customers import balance_summary, customer_of_partner
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.corpus.dump import iter_corpus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument, LedgerTransaction
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.ingest.service import IngestJob, ingest, upload_errors
from tokenclub.ledger.posting import audit
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

THRESHOLD = 100_000_000


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())


def _partner(db: Database, name: str, approve: bool = True) -> int:
    with db.transaction() as session:
        pid = partners.apply(session, name, threshold_words=THRESHOLD).id
        if approve:
            partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
    return pid


def _job(spec: PipelineSpec, partner_id: int, *paths: Path, workers: int = 1, batch: int = 16) -> IngestJob:
    return IngestJob(partner_id, tuple(paths), spec, Fraction(1), batch_size=batch, workers=workers)


def _grants(db: Database) -> int:
    with db.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.kind == "grant_free_tokens")
        )
    assert count is not None
    return count


def test_same_upload_twice_credits_once(db: Database, spec: PipelineSpec, tmp_path: Path) -> None:
    pid = _partner(db, "A")
    upload = write_jsonl(tmp_path / "in" / "a.jsonl", petitions(0, 40))
    first = ingest(db, tmp_path / "home", _job(spec, pid, upload))
    again = ingest(db, tmp_path / "home", _job(spec, pid, upload))
    assert first["replay"] is False
    assert again["replay"] is True
    assert (again["credited_tokens"], again["free_tokens_granted"]) == (0, 0)
    assert again["original"] == {
        "credited_tokens": first["credited_tokens"],
        "free_tokens_granted": first["free_tokens_granted"],
    }
    assert {
        k: v
        for k, v in again.items()
        if k not in ("replay", "credited_tokens", "free_tokens_granted", "original")
    } == {k: v for k, v in first.items() if k not in ("replay", "credited_tokens", "free_tokens_granted")}
    assert first["documents_seen"] == 40
    assert first["documents_accepted"] + sum(first["rejected"].values()) == 40
    assert first["credited_tokens"] == first["tokens"] == first["free_tokens_granted"] > 0
    assert _grants(db) == 1
    with db.transaction() as session:
        summary = balance_summary(session, customer_of_partner(session, pid).id)
        assert summary["free_tokens_granted"] == first["credited_tokens"]
        assert partners.show(session, pid, THRESHOLD).accepted_words == first["words"]
        assert audit(session) == []
    dumped = list(iter_corpus(db, tmp_path / "home", pid))
    assert len(dumped) == first["documents_accepted"]
    assert sum(row["tokens"] for row in dumped) == first["tokens"]
    assert [p for p in (tmp_path / "home" / "raw").rglob("*") if p.is_file()] == []


def test_disguised_copy_by_another_partner_is_rejected(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    a, b = _partner(db, "A"), _partner(db, "B")
    rows = petitions(100, 30)
    original = ingest(db, tmp_path / "home", _job(spec, a, write_jsonl(tmp_path / "a.jsonl", rows)))
    copied = [{**row, "content": disguise(row["content"])} for row in rows]
    receipt = ingest(db, tmp_path / "home", _job(spec, b, write_jsonl(tmp_path / "b.jsonl", copied)))
    assert receipt["documents_accepted"] == 0
    assert receipt["credited_tokens"] == 0 and receipt["free_tokens_granted"] == 0
    assert receipt["rejected"].get(DUPLICATE_REASON, 0) == original["documents_accepted"]
    assert "A" not in json.dumps(receipt["rejected"])
    with db.transaction() as session:
        assert balance_summary(session, customer_of_partner(session, b).id)["free_tokens_granted"] == 0
        owners = set(session.scalars(select(CorpusDocument.partner_id)))
    assert owners == {a}


def test_duplicates_inside_one_upload_keep_the_first(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pid = _partner(db, "A")
    rows = petitions(200, 10)
    receipt = ingest(db, tmp_path / "h", _job(spec, pid, write_jsonl(tmp_path / "x.jsonl", rows + rows[:4])))
    assert receipt["documents_seen"] == 14
    assert receipt["rejected"][DUPLICATE_REASON] >= 4
    sources = [row["source"] for row in iter_corpus(db, tmp_path / "h", pid)]
    assert all(int(s.rsplit("#L", 1)[1]) <= 10 for s in sources)


def test_counts_do_not_depend_on_workers_or_batch_size(spec: PipelineSpec, tmp_path: Path) -> None:
    upload = write_jsonl(tmp_path / "u.jsonl", petitions(300, 60))
    receipts = []
    for workers, batch in ((1, 7), (2, 16), (2, 64)):
        database = Database(f"sqlite:///{tmp_path / f'w{workers}b{batch}.db'}")
        upgrade(database.engine)
        pid = _partner(database, "A")
        job = _job(spec, pid, upload, workers=workers, batch=batch)
        receipts.append(ingest(database, tmp_path / f"home{workers}{batch}", job))
        database.dispose()
    assert receipts[0] == receipts[1] == receipts[2]


def test_unreadable_file_is_reported_and_the_rest_is_credited(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pid = _partner(db, "A")
    good = write_jsonl(tmp_path / "up" / "good.jsonl", petitions(400, 5))
    (tmp_path / "up" / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (tmp_path / "up" / "empty.txt").write_bytes(b"")
    receipt = ingest(db, tmp_path / "h", _job(spec, pid, tmp_path / "up"))
    assert receipt["documents_seen"] == 5
    assert [e["source"] for e in receipt["errors"]] == ["up/broken.pdf", "up/empty.txt"]
    assert all(e["reason"] for e in receipt["errors"])
    assert receipt["credited_tokens"] > 0 and good.exists()


def test_unapproved_partner_and_missing_path_are_refused(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pending = _partner(db, "P", approve=False)
    upload = write_jsonl(tmp_path / "a.jsonl", petitions(0, 2))
    with pytest.raises(StateError, match="not approved"):
        ingest(db, tmp_path / "h", _job(spec, pending, upload))
    approved = _partner(db, "Q")
    with pytest.raises(InvalidInputError, match=r"nope\.jsonl: no such file"):
        ingest(db, tmp_path / "h", _job(spec, approved, tmp_path / "nope.jsonl"))
    assert _grants(db) == 0


def test_folder_links_are_refused_and_nothing_outside_is_stored(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pid = _partner(db, "A")
    outside = write_jsonl(tmp_path / "outside" / "secret.jsonl", petitions(500, 5))
    up = tmp_path / "up"
    write_jsonl(up / "good.jsonl", petitions(400, 5))
    (up / "linked.jsonl").symlink_to(outside)
    os.link(outside, up / "hard.jsonl")
    home = tmp_path / "h"
    receipt = ingest(db, home, _job(spec, pid, up))
    assert receipt["documents_seen"] == 5
    assert receipt["errors"] == [
        {
            "source": "up/hard.jsonl",
            "reason": "hard link (2 names for one file); skipped: copy the file to upload it",
        },
        {"source": "up/linked.jsonl", "reason": "symbolic link; skipped (uploads never follow links)"},
    ]
    assert [f["name"] for f in receipt["files"]] == ["up/good.jsonl"]
    assert {row["source"].split("#")[0] for row in iter_corpus(db, home, pid)} == {"up/good.jsonl"}


def test_ten_thousand_failing_members_make_a_short_grouped_receipt(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pid = _partner(db, "A")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for n in range(10_000):
            archive.writestr(f"empty/{n:05d}.txt", b"")
        for n in range(17):
            archive.writestr(f"junk/{n:02d}.bin", bytes(range(32)) * 8)
    up = tmp_path / "up"
    up.mkdir()
    with zipfile.ZipFile(up / "bomb.zip", "w") as outer:
        outer.writestr("inner.zip", inner.getvalue())
    write_jsonl(up / "good.jsonl", petitions(601, 3))
    home = tmp_path / "h"
    receipt = ingest(db, home, _job(spec, pid, up, batch=4096))
    assert receipt["error_count"] == 10_017
    assert receipt["errors"] == []
    assert [(g["reason"], g["count"]) for g in receipt["error_groups"]] == [
        ("empty file", 10_000),
        ("not text: binary data (216 control bytes in 256)", 17),
    ]
    assert receipt["error_groups"][0]["examples"] == [
        "up/bomb.zip!inner.zip!empty/00000.txt",
        "up/bomb.zip!inner.zip!empty/00001.txt",
        "up/bomb.zip!inner.zip!empty/00002.txt",
    ]
    assert len(json.dumps(receipt, ensure_ascii=False)) < 4_000
    assert receipt["documents_seen"] == 3 and receipt["credited_tokens"] > 0
    full = upload_errors(db, receipt["upload_id"])
    assert len(full) == 10_017 and full[-1]["source"] == "up/bomb.zip!inner.zip!junk/16.bin"


def test_damaged_text_is_read_and_its_bad_bytes_counted(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    pid = _partner(db, "A")
    text = "\n".join(row["content"] for row in petitions(700, 2))
    good = text.encode()
    cut = good.index(b" ", len(good) // 2)
    (tmp_path / "damaged.txt").write_bytes(good[:cut] + b"\xff\xfe\xfd" + good[cut:])
    receipt = ingest(db, tmp_path / "h", _job(spec, pid, tmp_path / "damaged.txt"))
    assert receipt["repaired"] == {"documents": 1, "bad_bytes": 3}
    assert receipt["error_count"] == 0 and receipt["documents_seen"] == 1
