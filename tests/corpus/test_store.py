"""The corpus store on any fsspec filesystem: local folders, file:// URLs and memory://."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing, rewrap_files
from tokenclub.atrest.sealed import SealError
from tokenclub.corpus.store import CORPUS_SCHEMA, CorpusStore


def _table(rows: int) -> pa.Table:
    columns: dict[str, list[object]] = {}
    for field in CORPUS_SCHEMA:
        if pa.types.is_string(field.type):
            columns[field.name] = [f"{field.name}-{i}-한국어" for i in range(rows)]
        elif pa.types.is_integer(field.type):
            columns[field.name] = list(range(rows))
        elif pa.types.is_binary(field.type):
            columns[field.name] = [bytes([i]) * 8 for i in range(rows)]
        else:
            columns[field.name] = [None] * rows
    return pa.table(columns, schema=CORPUS_SCHEMA)


SEALING = Sealing(Keyring({}, "").with_new_key(), chunk_size=4096)


@pytest.mark.parametrize("sealing", [None, SEALING], ids=["plain", "sealed"])
@pytest.mark.parametrize("scheme", ["path", "file", "memory"])
def test_a_part_reads_back_equal(tmp_path: Path, scheme: str, sealing: Sealing | None) -> None:
    root = {
        "path": str(tmp_path / "corpus"),
        "file": f"file://{tmp_path}/corpus",
        "memory": f"memory://tc-{uuid.uuid4().hex}/corpus",
    }[scheme]
    store = CorpusStore(root, sealing)
    table = _table(5)
    written = store.write_part("u1", 3, table)
    assert written.endswith("/corpus/upload=u1/part-000003.parquet")
    assert store.read_part("u1", 3).equals(table)
    assert store.read_part("u1", 3, ["doc_id"]).column("doc_id").to_pylist() == table["doc_id"].to_pylist()
    # Only the finished part is there: no temporary file left next to it.
    assert [p.rsplit("/", 1)[1] for p in store.fs.ls(written.rsplit("/", 1)[0], detail=False)] == [
        "part-000003.parquet"
    ]


def test_file_url_and_path_name_the_same_files(tmp_path: Path) -> None:
    CorpusStore(f"file://{tmp_path}/corpus").write_part("u1", 0, _table(2))
    assert (tmp_path / "corpus" / "upload=u1" / "part-000000.parquet").is_file()
    assert CorpusStore(tmp_path / "corpus").read_part("u1", 0).num_rows == 2


def test_memory_store_is_shared_by_url() -> None:
    url = f"memory://tc-{uuid.uuid4().hex}/corpus"
    CorpusStore(url).write_part("u9", 1, _table(1))
    assert fsspec.filesystem("memory").isfile(
        f"{url.removeprefix('memory://')}/upload=u9/part-000001.parquet"
    )
    assert CorpusStore(url).read_part("u9", 1).num_rows == 1


def test_sealed_parts_are_private_ciphertext_and_rewrap_in_place(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path / "corpus", SEALING)
    table = _table(300)
    path = Path(store.write_part("u1", 0, table))
    stored = path.read_bytes()
    assert stored.startswith(b"TCSEALv1") and b"PAR1" not in stored and "한국어".encode() not in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "corpus").rglob("*") if p.is_dir()} == {0o700}
    with pytest.raises(SealError, match="no master key"):
        CorpusStore(tmp_path / "corpus").read_part("u1", 0)
    ring = SEALING.wrapper
    assert isinstance(ring, Keyring)
    rotated = ring.with_new_key()
    assert rewrap_files(store.fs, store.root, rotated, rotated) == (1, 0)
    assert path.read_bytes()[512:] == stored[512:]  # the data was not rewritten
    reopened = CorpusStore(tmp_path / "corpus", Sealing(rotated.only_current(), 4096))
    assert reopened.read_part("u1", 0).equals(table)
    assert rewrap_files(store.fs, store.root, rotated, rotated) == (0, 1)


def test_plain_parts_from_before_encryption_still_read(tmp_path: Path) -> None:
    CorpusStore(tmp_path / "corpus").write_part("old", 0, _table(3))
    assert CorpusStore(tmp_path / "corpus", SEALING).read_part("old", 0).num_rows == 3
