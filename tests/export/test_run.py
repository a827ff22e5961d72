"""Exports: byte-identical shards, shared shard boundaries, provenance, manifest, clean failures.

Each format is read back by its ecosystem's reader: HuggingFace `datasets` for Parquet and
megatron-core's IndexedDataset for the Megatron pair. MosaicML Streaming cannot be installed
beside the project (it pins numpy<2.2 and pulls torchvision and transformers), so MDS shards
are parsed here by an independent reader of the documented layout, and by streaming's own
MDSReader where that package is installed (bash scripts/check_mds_reader.sh).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import importlib.util
import json
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from tests.export.homes import export, snapshot, two_partner_home
from tokenclub.db.engine import Database
from tokenclub.db.export_schema import Export
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.export.formats import ParquetFormat
from tokenclub.export.run import ExportRequest
from tokenclub.export.snapshot import SnapshotView
from tokenclub.tokenizer import load_tokenizer
from tokenclub.tokenizer_store import default_tokenizer_path

ALL = ("parquet", "megatron", "mds")
SHARD = 20_000


@pytest.fixture(scope="module")
def home_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database, SnapshotView]]:
    home = tmp_path_factory.mktemp("export") / "home"
    db = two_partner_home(home)
    yield home, db, snapshot(db)
    db.dispose()


@pytest.fixture(scope="module")
def exported(home_db: tuple[Path, Database, SnapshotView]) -> tuple[Path, dict[str, Any]]:
    home, db, snap = home_db
    manifest = export(db, home, ExportRequest(snap.id, ALL, SHARD))
    return home / "exports" / f"export-{manifest['export_id']:06d}", manifest


def _corpus(home: Path, db: Database) -> dict[str, tuple[int, str, int]]:
    """doc_id → (partner, text, tokens) straight from the corpus store."""
    from tokenclub.corpus.dump import iter_corpus

    return {r["doc_id"]: (r["partner_id"], r["text"], r["tokens"]) for r in iter_corpus(db, home)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_file_with_its_checksum(
    home_db: tuple[Path, Database, SnapshotView], exported: tuple[Path, dict[str, Any]]
) -> None:
    home, db, snap = home_db
    root, manifest = exported
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert manifest["snapshot_id"] == snap.id and manifest["formats"] == list(ALL)
    assert manifest["documents"] == 57 and manifest["tokens"] == snap.tokens
    assert manifest["partners"] == {
        str(p): {"documents": d, "tokens": t} for p, (d, t) in snap.partners.items()
    }
    assert manifest["tokenizer_fingerprint"] == snap.tokenizer_fingerprint
    for entry in [*manifest["files"], manifest["provenance"]]:
        assert _sha(root / entry["path"]) == entry["sha256"]
        assert (root / entry["path"]).stat().st_size == entry["bytes"]
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == {e["path"] for e in manifest["files"]} | {"provenance.parquet", "manifest.json"}
    shards = sorted({e["shard"] for e in manifest["files"] if e["shard"] is not None})
    assert len(shards) > 3  # 190 kB of text in 20 kB shards
    for shard in shards:  # every format cut at the same documents
        counts = {e["format"]: e["documents"] for e in manifest["files"] if e["shard"] == shard}
        assert set(counts) == set(ALL) and len(set(counts.values())) == 1
    text = _corpus(home, db)
    assert manifest["text_bytes"] == sum(len(t.encode()) for _, t, _ in text.values())


def test_same_snapshot_exported_again_gives_byte_identical_shards(
    home_db: tuple[Path, Database, SnapshotView], exported: tuple[Path, dict[str, Any]]
) -> None:
    home, db, snap = home_db
    _, first = exported
    again = export(db, home, ExportRequest(snap.id, ALL, SHARD, location=str(home.parent / "again")))
    assert again["export_id"] != first["export_id"]
    assert again["files"] == first["files"] and again["provenance"] == first["provenance"]


def test_parquet_shards_load_with_huggingface_datasets(
    home_db: tuple[Path, Database, SnapshotView], exported: tuple[Path, dict[str, Any]]
) -> None:
    from datasets import load_dataset

    home, db, _ = home_db
    root, manifest = exported
    files = [str(root / e["path"]) for e in manifest["files"] if e["format"] == "parquet"]
    dataset = load_dataset("parquet", data_files=files, split="train", cache_dir=str(home.parent / "hf"))
    text = _corpus(home, db)
    assert dataset.column_names == ["id", "text"] and len(dataset) == 57
    assert {row["id"]: row["text"] for row in dataset} == {k: v[1] for k, v in text.items()}
    provenance = pq.read_table(root / "provenance.parquet").to_pylist()
    assert [p["doc_id"] for p in provenance] == dataset["id"]  # same order as the shards
    assert all(text[p["doc_id"]][0] == p["partner_id"] for p in provenance)


def test_megatron_pair_reads_back_with_megatron_core(
    home_db: tuple[Path, Database, SnapshotView], exported: tuple[Path, dict[str, Any]]
) -> None:
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    home, db, _ = home_db
    root, manifest = exported
    tokenizer = load_tokenizer(default_tokenizer_path())
    eod = tokenizer.token_to_id("<|endoftext|>")
    assert manifest["megatron"] == {
        "dtype": "uint16",
        "eod_id": eod,
        "eod_token": "<|endoftext|>",
        "tokens": manifest["tokens"] + 57,
    }
    text = _corpus(home, db)
    provenance = pq.read_table(root / "provenance.parquet").to_pylist()
    shards = sorted({e["shard"] for e in manifest["files"] if e["format"] == "megatron"})
    seen = 0
    for shard in shards:
        dataset = indexed.IndexedDataset(str(root / "megatron" / f"shard-{shard:05d}"))
        rows = [p for p in provenance if p["shard"] == shard]
        assert len(dataset) == len(rows) and list(dataset.document_indices) == list(range(len(rows) + 1))
        for row in rows:
            ids = dataset[row["row"]]
            assert ids.dtype == np.uint16 and ids[-1] == eod
            assert len(ids) - 1 == text[row["doc_id"]][2]  # the pinned tokenizer's count
            assert tokenizer.decode(ids[:-1].tolist()) == text[row["doc_id"]][1]
            seen += 1
    assert seen == 57


def _mds_samples(folder: Path) -> list[dict[str, str]]:
    """An independent MDS reader: index.json, then per shard uint32 count, offsets, samples."""
    index = json.loads((folder / "index.json").read_text())
    out = []
    for info in index["shards"]:
        assert info["column_names"] == ["id", "text"] and info["column_encodings"] == ["str", "str"]
        data = (folder / info["raw_data"]["basename"]).read_bytes()
        assert len(data) == info["raw_data"]["bytes"]
        (count,) = struct.unpack_from("<I", data)
        offsets = np.frombuffer(data, "<u4", count + 1, 4)
        assert count == info["samples"] and offsets[-1] == len(data)
        for begin in offsets[:-1]:
            id_size, text_size = struct.unpack_from("<II", data, int(begin))
            body = int(begin) + 8
            out.append(
                {
                    "id": data[body : body + id_size].decode(),
                    "text": data[body + id_size : body + id_size + text_size].decode(),
                }
            )
    return out


def test_mds_shards_hold_every_document(
    home_db: tuple[Path, Database, SnapshotView], exported: tuple[Path, dict[str, Any]]
) -> None:
    home, db, _ = home_db
    root, _ = exported
    samples = _mds_samples(root / "mds")
    assert {s["id"]: s["text"] for s in samples} == {k: v[1] for k, v in _corpus(home, db).items()}
    assert [s["id"] for s in samples] == pq.read_table(root / "provenance.parquet").column(
        "doc_id"
    ).to_pylist()


def _streaming_format() -> Any:
    """mosaicml-streaming's format readers (`reader_from_json`, MDSReader).

    Its package `__init__` also imports the dataset side (torchvision, transformers), which
    cannot be installed beside the project; the readers need neither, so when that import
    fails the subpackages are loaded without running it. scripts/check_mds_reader.sh sets up
    such an installation and runs this test.
    """
    if importlib.util.find_spec("streaming") is None:
        pytest.skip("mosaicml-streaming is not installed (bash scripts/check_mds_reader.sh runs this test)")
    try:
        return importlib.import_module("streaming.base.format")
    except Exception:  # torchvision or transformers missing or broken beside the CPU torch
        for name in [n for n in sys.modules if n == "streaming" or n.startswith("streaming.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("streaming")
    assert spec is not None and spec.submodule_search_locations is not None
    folder = Path(next(iter(spec.submodule_search_locations)))
    for name in ("streaming", "streaming.base"):
        package = types.ModuleType(name)
        package.__path__ = [str(folder.parent / name.replace(".", "/"))]
        sys.modules[name] = package
    return importlib.import_module("streaming.base.format")


def test_mds_shards_read_with_mosaicml_streaming(exported: tuple[Path, dict[str, Any]]) -> None:
    fmt = _streaming_format()
    root, _ = exported
    index = json.loads((root / "mds" / "index.json").read_text())
    read: list[dict[str, str]] = []
    for info in index["shards"]:
        reader = fmt.reader_from_json(str(root / "mds"), None, info)
        reader.validate(True)
        read.extend(reader[i] for i in range(reader.samples))
    assert read == _mds_samples(root / "mds") and len(read) == 57


def test_seeded_shuffle_is_reproducible_and_a_permutation(
    home_db: tuple[Path, Database, SnapshotView],
) -> None:
    home, db, snap = home_db
    orders = []
    for seed, where in ((7, "s7a"), (7, "s7b"), (8, "s8")):
        manifest = export(
            db,
            home,
            ExportRequest(snap.id, ("parquet",), SHARD, seed=seed, location=str(home.parent / where)),
        )
        orders.append(pq.read_table(home.parent / where / "provenance.parquet").column("doc_id").to_pylist())
        assert manifest["seed"] == seed
    plain = list(_corpus(home, db))
    assert orders[0] == orders[1] and orders[0] != orders[2] and orders[0] != plain
    assert sorted(orders[0]) == sorted(plain) == sorted(orders[2])


def test_any_fsspec_store(home_db: tuple[Path, Database, SnapshotView]) -> None:
    home, db, snap = home_db
    manifest = export(
        db, home, ExportRequest(snap.id, ("parquet", "mds"), SHARD, location="memory://exports/one")
    )
    fs = fsspec.filesystem("memory")
    for entry in manifest["files"]:
        assert hashlib.sha256(fs.cat_file(f"/exports/one/{entry['path']}")).hexdigest() == entry["sha256"]
    assert json.loads(fs.cat_file("/exports/one/manifest.json")) == manifest


def test_bad_input_leaves_no_manifest(
    home_db: tuple[Path, Database, SnapshotView], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, db, snap = home_db
    with pytest.raises(NotFoundError, match="snapshot 999 does not exist"):
        export(db, home, ExportRequest(999, ALL, SHARD))
    taken = str(home.parent / "taken")
    export(db, home, ExportRequest(snap.id, ("parquet",), SHARD, location=taken))
    with pytest.raises(StateError, match=f"{taken} already holds an export"):
        export(db, home, ExportRequest(snap.id, ("parquet",), SHARD, location=taken))
    with pytest.raises(InvalidInputError, match="cannot write to s3://bucket/x: Install s3fs to access S3"):
        export(db, home, ExportRequest(snap.id, ALL, SHARD, location="s3://bucket/x"))
    blocker = home.parent / "a-file"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match=f"cannot write to {blocker}/out"):
        export(db, home, ExportRequest(snap.id, ALL, SHARD, location=str(blocker / "out")))

    def full(self: ParquetFormat) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ParquetFormat, "finish_shard", full)
    target = home.parent / "full"
    with pytest.raises(InvalidInputError, match=f"cannot write to {target}: No space left on device"):
        export(db, home, ExportRequest(snap.id, ALL, SHARD, location=str(target)))
    assert not (target / "manifest.json").exists()
    assert [p for p in target.rglob("*") if p.is_file()] == []  # written shards removed
    with db.transaction() as session:
        failed = session.scalars(select(Export).where(Export.status == "failed")).all()
    assert [(e.location, e.manifest_sha256) for e in failed] == [
        (taken, None),
        ("s3://bucket/x", None),
        (str(blocker / "out"), None),
        (str(target), None),
    ]
    assert "No space left on device" in failed[-1].error
