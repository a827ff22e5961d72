"""Ingest feeds the guard index: accepted text is guarded once its group of batches is indexed."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.cli.helpers import run_json
from tests.guard.corpus import fresh_texts
from tests.guard.homes import make_home
from tests.ingest.fixtures import approved_partner, petitions, write_jsonl
from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing
from tokenclub.corpus.dump import iter_corpus
from tokenclub.corpus.store import CorpusStore
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.schema import Upload
from tokenclub.guard.config import guard_settings
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing import background, parts
from tokenclub.guard.indexing.index import IndexShape, logged_parts, open_index
from tokenclub.ingest import service
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

INTRO = "요청하신 내용을 정리하면 다음과 같습니다. "
OUTRO = " 이 밖에 궁금한 점이 있으면 알려 주세요."


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())


def _ingest(db: Database, home: Path, spec: PipelineSpec, partner: int, upload: Path) -> dict[str, Any]:
    return ingest(db, home, IngestJob(partner, (upload,), spec, Fraction(1), batch_size=8, workers=1))


def _long(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if len(doc["text"]) >= 260]


def _span(doc: dict[str, Any]) -> str:
    """60 verbatim characters from the middle of an accepted document."""
    return str(doc["text"])[200:260]


def test_accepted_documents_are_guarded_and_attributed(
    db: Database, spec: PipelineSpec, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    a, b = approved_partner(db, "A"), approved_partner(db, "B")
    receipts = [
        _ingest(db, home, spec, a, write_jsonl(tmp_path / "a.jsonl", petitions(0, 20))),
        _ingest(db, home, spec, b, write_jsonl(tmp_path / "b.jsonl", petitions(20, 20))),
    ]
    index = open_index(home / "guard")
    assert index is not None
    assert index.tokens == sum(r["tokens"] for r in receipts) > 0
    assert sorted(index.partners) == [a, b]
    # the settings' default: partners come from the gram→document table, no attribution filter
    assert index.params.partner_bits == 0 and not list(index.folder.glob("seg-*/partner-*"))
    docs = _long(iter_corpus(db, home))
    assert {d["partner_id"] for d in docs} == {a, b}
    scanner = LeakScanner(index)
    for doc in docs:
        result = scanner.scan(INTRO + _span(doc) + OUTRO)
        assert (result.verdict, result.partner_id) == ("leak", doc["partner_id"])
    fresh = fresh_texts()["nsmc"][:300] + fresh_texts()["klue_nli"][:300]
    assert [t for t in fresh if scanner.scan(t).leaked] == []


def test_a_crash_before_indexing_is_caught_up(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the second batch commits but before it is indexed; the rerun syncs it."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    upload = write_jsonl(tmp_path / "a.jsonl", petitions(100, 24))
    calls: list[str] = []

    def dies_on_the_second_batch(home: Path, group: list[parts.Part], shape: IndexShape) -> int:
        calls.extend(name for name, _ in group)
        if len(calls) == 2:
            raise SystemExit("killed")
        return parts.index_group(home, group, shape)

    monkeypatch.setattr(service, "GROUP_TOKENS", 1)  # each batch indexed on its own
    _indexed_here(monkeypatch)  # where it dies
    monkeypatch.setattr(background, "index_group", dies_on_the_second_batch)
    with pytest.raises(SystemExit):
        _ingest(db, home, spec, pid, upload)
    monkeypatch.undo()
    index = open_index(home / "guard")
    assert index is not None
    upload_id = next(iter(logged_parts(index))).split("/")[0]
    assert logged_parts(index) == {calls[0]} == {f"{upload_id}/0"}
    missed = [d for d in iter_corpus(db, home) if d["source"].endswith(tuple(f"#L{i}" for i in range(9, 17)))]
    assert missed and all(
        not LeakScanner(index).scan(_span(d)).leaked for d in missed if len(d["text"]) >= 260
    )

    receipt = _ingest(db, home, spec, pid, upload)
    index = open_index(home / "guard")
    assert index is not None
    assert logged_parts(index) == {f"{upload_id}/{seq}" for seq in range(3)}
    assert index.tokens == receipt["tokens"]
    scanner = LeakScanner(index)
    assert all(
        scanner.scan(_span(d)).partner_id == pid for d in iter_corpus(db, home) if len(d["text"]) >= 260
    )


def test_guard_commands_sync_stats_and_rebuild_without_a_partner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rows_a, rows_b = petitions(300, 6), petitions(306, 6)
    make_home(home, [rows_a, rows_b]).dispose()
    stats = run_json(home, "guard", "stats")
    assert (stats["partners"], stats["segments"], stats["guaranteed_length"]) == (2, 1, 50)
    assert stats["documents_without_nfkc_blocks"] == 0
    assert run_json(home, "guard", "sync") == {"parts_indexed": 0}
    span_a, span_b = rows_a[0]["content"][100:220], rows_b[0]["content"][100:220]  # 89+ NFKC letters
    assert run_json(home, "guard", "check", span_a)["partner_id"] == 1

    rebuilt = run_json(home, "guard", "rebuild", "--exclude-partner", "1")
    assert rebuilt["partners"] == 1 and rebuilt["generation"] != stats["generation"]
    assert run_json(home, "guard", "check", span_a)["verdict"] == "pass"
    assert run_json(home, "guard", "check", span_b)["partner_id"] == 2


@pytest.mark.parametrize(("group_tokens", "adds"), [(parts.GROUP_TOKENS, [[0, 1, 2]]), (1, [[0], [1], [2]])])
def test_an_ingest_indexes_its_batches_in_groups_of_accepted_tokens(
    db: Database,
    spec: PipelineSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    group_tokens: int,
    adds: list[list[int]],
) -> None:
    """Three batches of 20 petitions (far below a group's tokens) go to the index in one add at
    the end; a group of one token makes it an add per batch. Either way every part is logged
    and the index counts the tokens the receipt credits."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    calls: list[list[int]] = []

    def recorded(home: Path, group: list[parts.Part], shape: IndexShape) -> int:
        calls.append([int(name.split("/")[1]) for name, _ in group])
        return parts.index_group(home, group, shape)

    monkeypatch.setattr(service, "GROUP_TOKENS", group_tokens)
    _indexed_here(monkeypatch)  # to be recorded
    monkeypatch.setattr(background, "index_group", recorded)
    receipt = _ingest(db, home, spec, pid, write_jsonl(tmp_path / "a.jsonl", petitions(0, 20)))
    index = open_index(home / "guard")
    assert index is not None
    assert calls == adds
    assert logged_parts(index) == {f"{receipt['upload_id']}/{seq}" for seq in range(3)}
    assert index.tokens == receipt["tokens"] > 0


def _indexed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest's groups indexed in the test's own process, where a patched add runs."""
    monkeypatch.setattr(service, "BackgroundIndexer", partial(background.BackgroundIndexer, worker=False))


def _every_batch_a_group(monkeypatch: pytest.MonkeyPatch) -> list[background.BackgroundIndexer]:
    """A group of one token (every batch a full group, for the worker); the indexers the ingest makes."""
    made: list[background.BackgroundIndexer] = []

    class Recorded(background.BackgroundIndexer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(service, "GROUP_TOKENS", 1)
    monkeypatch.setattr(service, "BackgroundIndexer", Recorded)
    return made


def _every_part_indexed(home: Path, receipt: dict[str, Any]) -> None:
    """The upload's three parts are logged and the index counts the tokens the receipt credits."""
    index = open_index(home / "guard")
    assert index is not None
    assert logged_parts(index) == {f"{receipt['upload_id']}/{seq}" for seq in range(3)}
    assert index.tokens == receipt["tokens"] > 0


def test_full_groups_are_indexed_by_a_worker_process_and_the_last_one_too(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a group of one token, every batch is a group: the first starts the worker, which
    indexes them all in order (the last one too, since a worker runs); the ingest returns once
    every part is in the index, guarded and attributed as when indexed here."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    made = _every_batch_a_group(monkeypatch)
    receipt = _ingest(db, home, spec, pid, write_jsonl(tmp_path / "a.jsonl", petitions(0, 20)))
    assert len(made) == 1 and made[0].worker_cpu_s > 0
    _every_part_indexed(home, receipt)
    index = open_index(home / "guard")
    assert index is not None
    scanner = LeakScanner(index)
    docs = _long(iter_corpus(db, home))
    assert docs and all(scanner.scan(INTRO + _span(d) + OUTRO).partner_id == pid for d in docs)


def test_a_sealed_corpus_is_indexed_by_a_worker_that_holds_no_key(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker gets the committed rows from the ingest, never the store or its sealing: the
    parts on disk are sealed, and every one of them is indexed."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    made = _every_batch_a_group(monkeypatch)
    keyring = Keyring({}, "").with_new_key()
    sealing = Sealing(keyring, chunk_size=4096)
    rows = petitions(0, 20)
    job = IngestJob(
        pid,
        (write_jsonl(tmp_path / "a.jsonl", rows),),
        spec,
        Fraction(1),
        batch_size=8,
        workers=1,
        sealing=sealing,
    )
    sent: list[bytes] = []
    send = background.BackgroundIndexer._send

    def recorded(self: background.BackgroundIndexer, message: object) -> None:
        sent.append(pickle.dumps(message))
        send(self, message)

    monkeypatch.setattr(background.BackgroundIndexer, "_send", recorded)
    receipt = ingest(db, home, job)
    assert len(made) == 1 and made[0].worker_cpu_s > 0
    part = CorpusStore(home / "corpus").part_path(receipt["upload_id"], 0)
    assert not Path(part).read_bytes().startswith(b"PAR1")  # sealed: no Parquet to read without the key
    key = keyring.keys[keyring.current]
    assert len(sent) == 1 + 3 and not any(key in message for message in sent)
    _every_part_indexed(home, receipt)


def test_a_group_that_fails_in_the_worker_fails_the_ingest_and_the_rerun_indexes_it(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker cannot write the index (a file stands where its folder goes): `finish` raises
    that error, no receipt is written, and the rerun's sync indexes every part."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    upload = write_jsonl(tmp_path / "a.jsonl", petitions(0, 20))
    blocker = parts.guard_root(home)
    submit = background.BackgroundIndexer.submit

    def block_then_submit(self: background.BackgroundIndexer, group: list[parts.Part]) -> None:
        if not blocker.exists():
            blocker.write_text("not a folder")
        submit(self, group)

    monkeypatch.setattr(service, "GROUP_TOKENS", 1)
    monkeypatch.setattr(background.BackgroundIndexer, "submit", block_then_submit)
    with pytest.raises((FileExistsError, NotADirectoryError)):
        _ingest(db, home, spec, pid, upload)
    monkeypatch.undo()
    blocker.unlink()
    with db.transaction() as session:
        assert session.scalars(select(Upload.status)).one() == "processing"  # no receipt, no credit
    receipt = _ingest(db, home, spec, pid, upload)
    _every_part_indexed(home, receipt)


def test_an_ingest_that_fails_lets_its_worker_finish_the_groups_it_was_handed(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest dies after its second batch's commit: the worker, already handed the first
    two groups, indexes them whole and exits; the rerun indexes the third."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    upload = write_jsonl(tmp_path / "a.jsonl", petitions(0, 20))

    def dies(seq: int, stats: object) -> None:
        if seq == 1:
            raise RuntimeError("killed")

    monkeypatch.setattr(service, "GROUP_TOKENS", 1)
    job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=8, workers=1)
    with pytest.raises(RuntimeError, match="killed"):
        ingest(db, home, job, dies)
    index = open_index(home / "guard")
    assert index is not None
    upload_id = next(iter(logged_parts(index))).split("/")[0]
    assert logged_parts(index) == {f"{upload_id}/0", f"{upload_id}/1"}
    receipt = ingest(db, home, job)
    assert receipt["upload_id"] == upload_id
    _every_part_indexed(home, receipt)


def test_a_worker_that_dies_fails_the_ingest_with_a_reason(
    db: Database, spec: PipelineSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is killed after the first batch: the next group cannot be handed over, the
    ingest fails saying so (no receipt), and the rerun indexes every part."""
    home = tmp_path / "home"
    pid = approved_partner(db, "A")
    upload = write_jsonl(tmp_path / "a.jsonl", petitions(0, 20))
    made = _every_batch_a_group(monkeypatch)

    def kill_the_worker(seq: int, stats: object) -> None:
        worker = made[0]._worker
        if seq == 0 and worker is not None:
            worker.kill()
            worker.wait()

    job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=8, workers=1)
    with pytest.raises(RuntimeError, match="guard indexing worker died"):
        ingest(db, home, job, kill_the_worker)
    with db.transaction() as session:
        assert session.scalars(select(Upload.status)).one() == "processing"
    monkeypatch.undo()
    _every_part_indexed(home, ingest(db, home, job))


def test_a_worker_started_early_warms_up_and_indexes_only_what_it_is_handed(tmp_path: Path) -> None:
    """An upload that waits for an earlier turn starts its worker ahead of its first group: with
    no group it writes no index at all; with groups, every one is indexed and guarded."""
    home = tmp_path / "home"
    shape = guard_settings().index_shape()
    with background.BackgroundIndexer(home, shape) as idle:
        idle.start()
        idle.finish([])
    assert idle.worker_cpu_s > 0 and not (home / "guard").exists()
    texts = [row["content"] for row in petitions(0, 12)]
    groups = [[(f"up/{seq}", ([text], [7], [100]))] for seq, text in enumerate(texts)]
    with background.BackgroundIndexer(home, shape) as early:
        early.start()
        for group in groups[:-1]:
            early.submit(group)
        early.finish(groups[-1])
    index = open_index(home / "guard")
    assert index is not None
    assert logged_parts(index) == {f"up/{seq}" for seq in range(12)} and index.tokens == 1200
    scanner = LeakScanner(index)
    long_texts = [text for text in texts if len(text) >= 260]
    assert long_texts and all(scanner.scan(INTRO + t[200:260] + OUTRO).partner_id == 7 for t in long_texts)
