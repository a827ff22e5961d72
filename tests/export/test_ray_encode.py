"""Ray encoding writes the local path's bytes: same checksums in the manifest for every file,
from a sealed corpus store, ordered and shuffled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="the `ray` extra is not installed")

from tests.export.homes import snapshot, two_partner_home
from tokenclub.atrest.objects import sealing_for
from tokenclub.atrest.sealed import MAGIC, is_sealed
from tokenclub.corpus.store import CorpusStore
from tokenclub.db.engine import Database
from tokenclub.export.access import Role
from tokenclub.export.encode import Encoding
from tokenclub.export.ray_encode import RayEncoding
from tokenclub.export.run import ExportRequest, run_export
from tokenclub.export.snapshot import SnapshotView, snapshot_parts
from tokenclub.scale.runtime import RayRuntime, connect
from tokenclub.settings import Settings
from tokenclub.tokenizer_store import default_tokenizer_path

ALL = ("parquet", "megatron", "mds")
SHARD = 20_000


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[RayRuntime]:
    runtime = connect(num_cpus=2)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def sealed_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database, SnapshotView]]:
    """Two partners' petitions, their corpus parts rewritten sealed under the home's key."""
    home = tmp_path_factory.mktemp("ray-export") / "home"
    db = two_partner_home(home)
    view = snapshot(db)
    plain, sealed = (
        CorpusStore(home / "corpus"),
        CorpusStore(home / "sealed", sealing_for(Settings(home=home))),
    )
    with db.transaction() as session:
        parts = snapshot_parts(session, view.id)
    for part in parts:
        sealed.write_part(part.upload_id, part.batch_seq, plain.read_part(part.upload_id, part.batch_seq))
    yield home, db, view
    db.dispose()


def _export(home: Path, db: Database, request: ExportRequest, encoding: Encoding | None) -> dict[str, Any]:
    return run_export(
        db,
        CorpusStore(home / "sealed", sealing_for(Settings(home=home))),
        str(home / "exports"),
        default_tokenizer_path(),
        "trainer-kim",
        Role.TRAINER,
        request,
        encoding,
    )


def _checksums(manifest: dict[str, Any]) -> list[tuple[str, int, str]]:
    files = [*manifest["files"], manifest["provenance"]]
    return [(f["path"], f["bytes"], f["sha256"]) for f in files]


@pytest.mark.parametrize("seed", [None, 11])
def test_ray_export_is_byte_identical_to_the_local_one(
    sealed_home: tuple[Path, Database, SnapshotView], ray_runtime: RayRuntime, seed: int | None
) -> None:
    home, db, view = sealed_home
    local = _export(home, db, ExportRequest(view.id, ALL, SHARD, seed, str(home / f"local-{seed}")), None)
    ray = _export(
        home,
        db,
        ExportRequest(view.id, ALL, SHARD, seed, str(home / f"ray-{seed}")),
        RayEncoding(2, window=3),
    )
    assert len({f["shard"] for f in local["files"] if f["shard"] is not None}) >= 3
    assert _checksums(ray) == _checksums(local)
    assert (ray["documents"], ray["tokens"], ray["megatron"]) == (57, local["tokens"], local["megatron"])
    for f in ray["files"]:
        assert (home / f"ray-{seed}" / f["path"]).read_bytes() == (
            home / f"local-{seed}" / f["path"]
        ).read_bytes()
    sealed_parts = sorted((home / "sealed").rglob("part-*.parquet"))
    assert sealed_parts and all(is_sealed(p.read_bytes()[: len(MAGIC)]) for p in sealed_parts)
