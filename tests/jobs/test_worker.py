"""The ingest queue: one winner per claim, leases that expire, and a resumed ingest after a
worker dies mid-job that credits exactly once."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select

from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing
from tokenclub.atrest.sealed import HEADER_SIZE, MAGIC
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import Contribution
from tokenclub.db.schema import LedgerTransaction, UploadBatch
from tokenclub.ingest.extraction import StoredFile
from tokenclub.ingest.receipt import BatchStats
from tokenclub.ingest.service import IngestJob, ingest, upload_id_for
from tokenclub.jobs import queue
from tokenclub.jobs.worker import WorkerConfig, run_claim, work
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.portal import uploads
from tokenclub.portal.uploads import Limits
from tokenclub.tokenizer_store import default_tokenizer_path

THRESHOLD = 1_000
LIMITS = Limits(10**8, 10**7)


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())


def _config(home: Path, spec: PipelineSpec, lease: timedelta = timedelta(minutes=5)) -> WorkerConfig:
    return WorkerConfig(home, spec, Fraction(1), batch_size=4, workers=1, store_url=None, lease=lease)


def _queued(db: Database, home: Path, data: bytes, name: str = "p.jsonl") -> tuple[int, str]:
    with db.transaction() as session:
        pid = partners.apply(session, f"partner-{name}-{len(data)}", threshold_words=THRESHOLD).id
        partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
        upload = uploads.create_upload(
            session, pid, filename=name, purpose="user_data", size=len(data), mime_type="", limits=LIMITS
        )
    part = uploads.add_part(db, home, upload.id, pid, io.BytesIO(data), LIMITS)
    _, contribution = uploads.complete(db, home, upload.id, pid, [part.id])
    return pid, contribution.id


def _jsonl(tmp_path: Path, count: int) -> bytes:
    return write_jsonl(tmp_path / "src.jsonl", petitions(100, count)).read_bytes()


def test_only_one_worker_wins_a_job_and_a_dead_ones_lease_expires(db: Database, tmp_path: Path) -> None:
    _queued(db, tmp_path, b'{"text": "x"}\n')
    first = queue.claim(db, "a", timedelta(seconds=-1))  # its lease has already run out
    assert first is not None and first.attempt == 1
    second = queue.claim(db, "b", timedelta(minutes=5))
    assert second is not None and second.contribution_id == first.contribution_id and second.attempt == 2
    assert queue.claim(db, "c", timedelta(minutes=5)) is None
    assert not queue.renew(db, first, "a", timedelta(minutes=5))
    assert queue.renew(db, second, "b", timedelta(minutes=5))
    assert queue.finish(db, second, "b", upload_id=None, error="boom", retry=True) == "queued"
    assert queue.finish(db, first, "a", upload_id=None) is not None  # the dead worker's close changes nothing
    with db.transaction() as session:
        assert session.scalars(select(Contribution.status)).one() == "queued"


def test_concurrent_claims_have_one_winner(pg_db: Database, tmp_path: Path) -> None:
    _queued(pg_db, tmp_path, b'{"text": "x"}\n')
    results: list[object] = []
    barrier = threading.Barrier(6)

    def race(name: str) -> None:
        barrier.wait()
        results.append(queue.claim(pg_db, name, timedelta(minutes=5)))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1


def test_a_worker_that_dies_mid_ingest_is_resumed_and_credits_once(
    db: Database, tmp_path: Path, spec: PipelineSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    data = _jsonl(tmp_path, 20)
    _, contribution_id = _queued(db, home, data)
    dead = queue.claim(db, "dead", timedelta(seconds=-1))
    assert dead is not None

    class Killed(BaseException):
        """Stands for the process being killed after its first committed batch."""

    real = queue.progress

    def die_after_first(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise Killed

    monkeypatch.setattr(queue, "progress", die_after_first)
    with pytest.raises(Killed):
        run_claim(db, _config(home, spec), dead, "dead")
    monkeypatch.setattr(queue, "progress", real)
    with db.transaction() as session:
        row = session.get(Contribution, contribution_id)
        assert row is not None and row.status == "running" and row.batches_done == 1
        committed = session.scalar(select(func.count()).select_from(UploadBatch))
    assert committed == 1

    events: list[str] = []
    assert work(db, _config(home, spec), "alive", once=True, report=lambda e, _d: events.append(e)) == 1
    assert events == ["claimed", *["batch"] * 4, "done"]
    with db.transaction() as session:
        row = session.get(Contribution, contribution_id)
        assert row is not None and row.status == "done" and row.attempts == 2 and row.worker == "alive"
        assert row.documents_seen == 20 and row.batches_done == 5
        grants = session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.kind == "grant_free_tokens")
        )
        stats = [BatchStats.from_json(s) for s in session.scalars(select(UploadBatch.stats))]
    assert grants == 1 and len(stats) == 5
    assert row.documents_accepted == sum(s.accepted for s in stats)
    assert not (home / "staging").joinpath(row.data_upload_id).exists()


SENTENCE = "봉인된 업로드는 디스크 어디에도 평문으로 남지 않아야 합니다."


def _sealing() -> Sealing:
    """A local master key and small chunks, so every file spans several sealed chunks."""
    return Sealing(Keyring({"k": AESGCM.generate_key(bit_length=256)}, "k"), chunk_size=4096)


def _sealed_upload(db: Database, home: Path, data: bytes, sealing: Sealing) -> tuple[int, str, str]:
    """An upload sent in two parts and completed with its MD5; (partner, upload, contribution)."""
    with db.transaction() as session:
        pid = partners.apply(session, "sealed partner", threshold_words=THRESHOLD).id
        partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
        upload = uploads.create_upload(
            session, pid, filename="s.jsonl", purpose="user_data", size=len(data), mime_type="", limits=LIMITS
        )
    half = len(data) // 2
    parts = [
        uploads.add_part(db, home, upload.id, pid, io.BytesIO(piece), LIMITS, sealing=sealing)
        for piece in (data[:half], data[half:])
    ]
    assert [p.sha256 for p in parts] == [hashlib.sha256(p).hexdigest() for p in (data[:half], data[half:])]
    for part in parts:
        _assert_sealed_file(uploads.staging_dir(home, upload.id) / part.id)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    done, contribution = uploads.complete(db, home, upload.id, pid, [p.id for p in parts], md5, sealing)
    assert done.sha256 == hashlib.sha256(data).hexdigest()
    return pid, upload.id, contribution.id


def _assert_sealed_file(path: Path) -> None:
    stored = path.read_bytes()
    assert stored.startswith(MAGIC)
    assert SENTENCE.encode() not in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def _sealed_data(tmp_path: Path) -> bytes:
    rows = [*petitions(300, 8), {"title": "봉인", "content": " ".join([SENTENCE] * 40)}]
    return write_jsonl(tmp_path / "sealed.jsonl", rows).read_bytes()


def test_sealed_staging_keeps_no_plaintext_and_ingests_to_the_plain_files_receipt(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    home, sealing = tmp_path / "home", _sealing()
    data = _sealed_data(tmp_path)
    pid, upload_id, contribution_id = _sealed_upload(db, home, data, sealing)
    assembled = uploads.staging_dir(home, upload_id) / "file" / "s.jsonl"
    _assert_sealed_file(assembled)
    assert stat.S_IMODE(uploads.staging_dir(home, upload_id).stat().st_mode) == 0o700
    assert sorted(p.name for p in uploads.staging_dir(home, upload_id).iterdir()) == ["file"]

    assert work(db, replace(_config(home, spec), sealing=sealing), "w", once=True) == 1
    with db.transaction() as session:
        row = session.get(Contribution, contribution_id)
        assert row is not None and row.status == "done", row.error if row else None
        seen, accepted, receipt_id = row.documents_seen, row.documents_accepted, row.upload_id
    stored = StoredFile("s.jsonl", hashlib.sha256(data).hexdigest(), len(data))
    assert receipt_id == upload_id_for(pid, [stored])
    assert seen == 9 and accepted > 0
    assert not uploads.staging_dir(home, upload_id).exists()
    for raw in (home / "raw").rglob("*"):
        assert not raw.is_file() or SENTENCE.encode() not in raw.read_bytes()

    plain = tmp_path / "plain" / "s.jsonl"
    plain.parent.mkdir()
    plain.write_bytes(data)
    job = IngestJob(pid, (plain,), spec, Fraction(1), batch_size=4, workers=1, sealing=sealing)
    again = ingest(db, home, job)
    assert again["replay"] is True
    assert (again["upload_id"], again["documents_seen"], again["documents_accepted"]) == (
        receipt_id,
        seen,
        accepted,
    )


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (
            lambda b: b[: HEADER_SIZE + 100] + bytes([b[HEADER_SIZE + 100] ^ 1]) + b[HEADER_SIZE + 101 :],
            "chunk 0 fails authentication",
        ),
        (lambda b: b[:-1], "fails authentication (tampered or truncated)"),
        (lambda _b: b'{"text": "swapped in plaintext"}\n', "expected an encrypted file, found plaintext"),
    ],
    ids=["flipped-bit", "cut-short", "replaced-by-plaintext"],
)
def test_a_tampered_staged_file_fails_the_job_with_its_reason(
    db: Database,
    spec: PipelineSpec,
    tmp_path: Path,
    damage: Callable[[bytes], bytes],
    reason: str,
) -> None:
    home, sealing = tmp_path / "home", _sealing()
    _, upload_id, contribution_id = _sealed_upload(db, home, _sealed_data(tmp_path), sealing)
    assembled = uploads.staging_dir(home, upload_id) / "file" / "s.jsonl"
    assembled.write_bytes(damage(assembled.read_bytes()))
    assert work(db, replace(_config(home, spec), sealing=sealing), "w", once=True) == 1
    with db.transaction() as session:
        row = session.get(Contribution, contribution_id)
        assert row is not None and row.status == "failed"
        assert row.error.startswith("s.jsonl: ") and reason in row.error
        assert str(home) not in row.error
        assert session.scalar(select(func.count()).select_from(UploadBatch)) == 0
    assert not [p for p in (home / "raw").rglob("*") if p.is_file()]
