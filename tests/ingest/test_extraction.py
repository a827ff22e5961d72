"""An upload's files read on worker processes give the stream one reader gives: the same
documents and failures in the same order, a large file read in the driver between them."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPORA
from tests.ingest.fixtures import approved_partner, petitions, write_jsonl
from tokenclub.corpus.dump import iter_corpus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.rawstore import RawStore
from tokenclub.extract.records import RecordOptions
from tokenclub.ingest import extraction
from tokenclub.ingest.extraction import Item, StoredFile, extract_upload, pooled
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.executor import Readers
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sample document, a JSONL of petitions among them, and a file no reader takes."""
    folder = tmp_path_factory.mktemp("upload")
    for kind in ("hwp", "hwpx", "pdf"):
        for path in sorted((CORPORA / "samples" / kind).iterdir()):
            (folder / path.name).write_bytes(path.read_bytes())
    write_jsonl(folder / "m-petitions.jsonl", petitions(0, 120))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot a pdf after all")
    return folder


@pytest.fixture(scope="module")
def readers() -> Iterator[Readers]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield Readers(pool.submit, 2)


def _stored(raw: RawStore, folder: Path) -> list[StoredFile]:
    paths = sorted(folder.iterdir())
    return [StoredFile(p.name, raw.put_file(p), p.stat().st_size) for p in paths]


def test_files_read_on_workers_come_back_in_file_order(
    upload: Path, readers: Readers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = RawStore(tmp_path / "raw")
    files = _stored(raw, upload)
    jsonl = next(f for f in files if f.name.endswith(".jsonl"))
    # the JSONL is the one file too large for a worker: it is read here, between the others
    monkeypatch.setattr(extraction, "AHEAD_BYTES", jsonl.size - 1)
    refused = [ExtractionFailure("link", "a link, not a file")]
    options = RecordOptions()
    assert pooled(raw, files, options, readers)
    alone = list(extract_upload(raw, files, refused, options))
    shared = list(extract_upload(raw, files, refused, options, readers))
    assert shared == alone
    assert len(alone) == 1 + 10 + 120  # the refusal, ten files (the broken one fails), the petitions
    assert isinstance(alone[0], ExtractionFailure)
    failures = [item for item in alone if isinstance(item, ExtractionFailure)]
    assert [f.source for f in failures][1:] == ["broken.pdf", "m-petitions.jsonl#L81"]  # no text
    sources = [item.source.split("#")[0] for item in alone[1:]]
    assert sources == sorted(sources)  # file order: broken.pdf, the HWPs, the JSONL's rows, the rest


def test_a_file_whose_text_outgrows_a_worker_is_read_here_and_the_budget_holds_files_back(
    upload: Path, readers: Readers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = RawStore(tmp_path / "raw")
    files = _stored(raw, upload)
    options = RecordOptions()
    alone = list(extract_upload(raw, files, [], options))
    monkeypatch.setattr(extraction, "AHEAD_TEXT", 20_000)  # the JSONL's petitions pass it
    monkeypatch.setattr(extraction, "AHEAD_BUDGET", 1)  # one file ahead at a time
    given_back: list[str] = []
    reading = extraction.extract_file

    def read_here(raw: RawStore, stored: StoredFile, options: RecordOptions) -> Iterator[Item]:
        given_back.append(stored.name)
        return reading(raw, stored, options)

    monkeypatch.setattr(extraction, "extract_file", read_here)
    assert list(extract_upload(raw, files, [], options, readers)) == alone
    assert given_back == ["m-petitions.jsonl"]


def test_few_files_or_no_readers_are_read_here(upload: Path, readers: Readers, tmp_path: Path) -> None:
    raw = RawStore(tmp_path / "raw")
    files = _stored(raw, upload)
    options = RecordOptions()
    assert not pooled(raw, files, options, None)
    assert not pooled(raw, files[: extraction.POOL_MIN_FILES - 1], options, readers)
    assert pooled(raw, files[: extraction.POOL_MIN_FILES], options, readers)


def _ingest(home: Path, upload: Path, workers: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    db = Database(f"sqlite:///{home / 'tc.db'}")
    home.mkdir()
    upgrade(db.engine)
    pid = approved_partner(db, "A")
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=16, workers=workers)
    receipt = ingest(db, home, job)
    dumped = list(iter_corpus(db, home))
    db.dispose()
    return receipt, dumped


def test_an_ingest_with_workers_reading_gives_the_receipt_and_corpus_of_one_reader(
    upload: Path, tmp_path: Path
) -> None:
    one_receipt, one_corpus = _ingest(tmp_path / "one", upload, 1)
    two_receipt, two_corpus = _ingest(tmp_path / "two", upload, 2)
    assert two_receipt == one_receipt
    assert two_corpus == one_corpus
    assert one_receipt["documents_seen"] == 9 + 120 - 1  # one petition has no text
    assert [e["source"] for e in one_receipt["errors"]][:1] == [f"{upload.name}/broken.pdf"]
