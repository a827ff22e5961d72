"""Ingest with the stores on another fsspec filesystem: same receipt, nothing in the home."""

from __future__ import annotations

import uuid
from fractions import Fraction
from pathlib import Path

import fsspec

from tests.ingest.fixtures import petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.dump import iter_corpus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path


def _run(
    tmp_path: Path, name: str, upload: Path, store_url: str | None
) -> tuple[dict[str, object], Database]:
    db = Database(f"sqlite:///{tmp_path / f'{name}.db'}")
    upgrade(db.engine)
    with db.transaction() as session:
        pid = partners.apply(session, "A", threshold_words=1).id
        partners.decide(session, pid, PartnerStatus.APPROVED, 1)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=16, workers=1, store_url=store_url)
    return ingest(db, tmp_path / name, job), db


def test_memory_store_gives_the_local_receipt(tmp_path: Path) -> None:
    upload = write_jsonl(tmp_path / "in" / "p.jsonl", petitions(40, 30))
    local, local_db = _run(tmp_path, "local", upload, None)
    bucket = f"tc-{uuid.uuid4().hex}"
    remote, remote_db = _run(tmp_path, "remote", upload, f"memory://{bucket}")
    assert remote == local
    assert local["documents_accepted"] == 28
    memory = fsspec.filesystem("memory")
    parts = memory.find(f"/{bucket}/corpus")
    assert len(parts) == 2  # 30 documents in batches of 16, both with accepted documents
    assert memory.find(f"/{bucket}/raw") == []  # released once the receipt was written
    assert not (tmp_path / "remote" / "corpus").exists()
    dumped = list(iter_corpus(remote_db, tmp_path / "remote", store_url=f"memory://{bucket}"))
    assert dumped == list(iter_corpus(local_db, tmp_path / "local"))
    local_db.dispose()
    remote_db.dispose()
