"""Uploads running at once commit in the order they registered: credits as in sequence."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from tests.ingest.fixtures import approved_partner, disguise, petitions, write_jsonl
from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.schema import Upload, UploadBatch
from tokenclub.extract.document import ExtractionFailure
from tokenclub.guard.indexing import background, build
from tokenclub.ingest import service
from tokenclub.ingest import turns as turns_module
from tokenclub.ingest.receipt import BatchStats
from tokenclub.ingest.service import BatchCallback, IngestJob, ingest
from tokenclub.ingest.turns import Spool, Turns
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

QUICK = Turns(beat_s=0.05, stale_s=30.0, poll_s=0.01)


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())


def _job(spec: PipelineSpec, partner_id: int, path: Path) -> IngestJob:
    return IngestJob(partner_id, (path,), spec, Fraction(1), batch_size=8, workers=1)


def _committed(db: Database, upload_id: str | None = None) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(UploadBatch)
        if upload_id is not None:
            query = query.where(UploadBatch.upload_id == upload_id)
        return session.scalar(query) or 0


def test_a_later_upload_spools_until_the_earlier_one_finishes(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's last batch holds documents that B carries disguised. A pauses after its first batch;
    B, registered later, maps all of its batches meanwhile but commits none, so when A goes on
    it keeps its documents and B's copies are duplicates, as in sequence. Committing as soon as
    mapped (without turns) would give them to B."""
    a, b = approved_partner(db, "A"), approved_partner(db, "B")
    rows = petitions(400, 32)
    copies = [{**row, "content": disguise(row["content"])} for row in rows[24:]]
    path_a = write_jsonl(tmp_path / "a" / "a.jsonl", rows)
    path_b = write_jsonl(tmp_path / "b" / "b.jsonl", copies + petitions(500, 8))
    home = tmp_path / "home"

    a_paused, a_go, b_spooled = threading.Event(), threading.Event(), threading.Event()
    spooled: list[int] = []
    put = Spool.put

    def counted_put(self: Spool, seq: int, table: pa.Table, failures: list[ExtractionFailure]) -> None:
        put(self, seq, table, failures)
        spooled.append(seq)
        if len(spooled) == 2:  # both of B's batches
            b_spooled.set()

    monkeypatch.setattr(Spool, "put", counted_put)
    started: list[tuple[str, bool]] = []
    start = background.BackgroundIndexer.start

    def recorded_start(self: background.BackgroundIndexer, early: bool = True) -> None:
        started.append((threading.current_thread().name, early))
        start(self, early)

    monkeypatch.setattr(background.BackgroundIndexer, "start", recorded_start)

    def pause_after_first(seq: int, stats: BatchStats) -> None:
        if seq == 0:
            a_paused.set()
            assert a_go.wait(60)

    receipts: dict[str, dict[str, object]] = {}
    waits: list[list[str]] = []

    def run(name: str, pid: int, path: Path, on_batch: BatchCallback | None = None) -> None:
        receipts[name] = ingest(db, home, _job(spec, pid, path), on_batch, turns=QUICK, on_wait=waits.append)

    first = threading.Thread(target=run, args=("a", a, path_a, pause_after_first), name="a")
    first.start()
    assert a_paused.wait(60)
    second = threading.Thread(target=run, args=("b", b, path_b), name="b")
    second.start()
    assert b_spooled.wait(60)
    # B's indexing worker starts (and warms up) while B waits; A's has had no group to start it
    assert set(started) == {("b", True)}
    with db.transaction() as session:
        turns = {pid: turn for pid, turn in session.execute(select(Upload.partner_id, Upload.turn))}
        a_upload = session.scalar(select(Upload.id).where(Upload.partner_id == a))
        b_upload = session.scalar(select(Upload.id).where(Upload.partner_id == b))
    turn_a, turn_b = turns[a], turns[b]
    assert turn_a is not None and turn_b == turn_a + 1
    assert _committed(db, b_upload) == 0
    assert waits == [[a_upload]]  # B heard once whom it waits for
    assert sorted(p.name for p in (home / "spool" / str(b_upload)).iterdir()) == [
        "000000.arrow",
        "000001.arrow",
    ]
    a_go.set()
    first.join(60)
    second.join(60)
    assert receipts["a"]["documents_accepted"] == 32
    assert receipts["b"]["rejected"] == {DUPLICATE_REASON: 8}
    assert receipts["b"]["documents_accepted"] == 8
    assert _committed(db) == 4 + 2
    assert not (home / "spool" / str(b_upload)).exists()


def test_a_silent_earlier_upload_holds_no_one_back(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier turn whose run stopped beating (a crash) is passed over at once."""
    a, b = approved_partner(db, "A"), approved_partner(db, "B")
    with db.transaction() as session:
        session.add(
            Upload(
                id="crashed",
                partner_id=a,
                status="processing",
                files="[]",
                batch_size=8,
                tokenizer_fingerprint="x",
                turn=1,
                heartbeat_s=int(time.time() - 31),
            )
        )
    monkeypatch.setattr(Spool, "put", lambda *args: pytest.fail("spooled behind a silent upload"))
    receipt = ingest(
        db,
        tmp_path / "home",
        _job(spec, b, write_jsonl(tmp_path / "b.jsonl", petitions(600, 8))),
        turns=QUICK,
    )
    assert (receipt["documents_seen"], receipt["documents_accepted"]) == (7, 6)


def test_a_failed_run_stops_holding_later_turns(db: Database, spec: PipelineSpec, tmp_path: Path) -> None:
    pid = approved_partner(db, "A")

    def fail(seq: int, stats: BatchStats) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        ingest(
            db,
            tmp_path / "home",
            _job(spec, pid, write_jsonl(tmp_path / "a.jsonl", petitions(700, 8))),
            fail,
            turns=QUICK,
        )
    with db.transaction() as session:
        upload = session.scalars(select(Upload)).one()
        assert (upload.status, upload.turn, upload.heartbeat_s) == ("processing", 1, None)
    assert turns_module.earlier_active(db, 2, QUICK) == []
    resumed = ingest(
        db,
        tmp_path / "home",
        _job(spec, pid, write_jsonl(tmp_path / "a.jsonl", petitions(700, 8))),
        turns=QUICK,
    )
    assert resumed["documents_accepted"] == 8
    with db.transaction() as session:
        assert session.scalars(select(Upload.turn)).one() == 2


def test_a_run_stops_holding_later_turns_once_it_has_committed(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its last commit a run still indexes, writes its receipt and credits, but a later
    turn no longer waits for it: while it is still processing, it is not active."""
    pid = approved_partner(db, "A")
    seen: list[tuple[str, list[str]]] = []

    def observed_sync(*args: object) -> int:
        with db.transaction() as session:
            status = session.scalars(select(Upload.status)).one()
        seen.append((status, turns_module.earlier_active(db, 2, QUICK)))
        return build.sync(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "guard_sync", observed_sync)
    ingest(
        db,
        tmp_path / "home",
        _job(spec, pid, write_jsonl(tmp_path / "a.jsonl", petitions(700, 8))),
        turns=QUICK,
    )
    assert seen == [("processing", [])]


def test_the_spool_keeps_batches_sealed_and_gives_them_back_in_order(tmp_path: Path) -> None:
    sealing = Sealing(Keyring({}, "").with_new_key(), chunk_size=4096)
    spool = Spool(tmp_path / "spool", sealing)
    tables = {seq: pa.table({"text": [f"청원 {seq}번 본문"] * (seq + 1)}) for seq in (3, 1, 2)}
    for seq, table in tables.items():
        spool.put(seq, table, [ExtractionFailure(f"파일{seq}.hwp", "damaged")] if seq == 2 else [])
    assert len(spool) == 3
    for path in (tmp_path / "spool").iterdir():
        assert "청원".encode() not in path.read_bytes()
    drained = list(spool.drain())
    assert [seq for seq, _, _ in drained] == [1, 2, 3]
    assert all(table.equals(tables[seq]) for seq, table, _ in drained)
    assert [failures for _, _, failures in drained] == [[], [ExtractionFailure("파일2.hwp", "damaged")], []]
    assert len(spool) == 0 and not (tmp_path / "spool").exists()


def test_turns_refuse_a_heartbeat_slower_than_the_staleness() -> None:
    with pytest.raises(ValueError, match="beat_s < stale_s"):
        Turns(beat_s=60, stale_s=60)
