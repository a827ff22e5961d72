"""The Ray Data executor gives the local executor's receipt and corpus on real uploads."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.cli.helpers import run_cli
from tests.conftest import CORPORA
from tests.ingest.fixtures import approved_partner, disguise, petitions, write_jsonl
from tokenclub.corpus.dump import iter_corpus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument
from tokenclub.extract.reader import iter_extract
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import LocalExecutor
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.scale.ray_executor import RayExecutor
from tokenclub.scale.runtime import RayRuntime
from tokenclub.tokenizer_store import default_tokenizer_path


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Petitions with disguised copies inside, and real HWPX and PDF documents."""
    folder = tmp_path_factory.mktemp("upload")
    rows = petitions(400, 150)
    rows += [{**row, "content": disguise(row["content"])} for row in rows[:12]]
    write_jsonl(folder / "petitions.jsonl", rows)
    for kind in ("hwpx", "pdf"):
        for path in sorted((CORPORA / "samples" / kind).iterdir()):
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _ingest(
    tmp_path: Path, name: str, spec: PipelineSpec, upload: Path, ray: bool, shares_disk: bool = False
) -> dict[str, Any]:
    db = Database(f"sqlite:///{tmp_path / f'{name}.db'}")
    upgrade(db.engine)
    pid = approved_partner(db, "A")
    job = IngestJob(pid, (upload,), spec, Fraction(1), batch_size=24, workers=2)
    executor = RayExecutor(spec, parallelism=2, window=3, shares_disk=shares_disk) if ray else None
    receipt = ingest(db, tmp_path / name, job, executor=executor)
    with db.transaction() as session:
        ids = (
            session.query(CorpusDocument.doc_id, CorpusDocument.tokens).order_by(CorpusDocument.doc_id).all()
        )
    dumped = list(iter_corpus(db, tmp_path / name))
    db.dispose()
    return {"receipt": receipt, "index": [tuple(row) for row in ids], "dump": dumped}


def test_ray_ingest_equals_local_ingest(
    ray_runtime: RayRuntime, spec: PipelineSpec, upload: Path, tmp_path: Path
) -> None:
    local = _ingest(tmp_path, "local", spec, upload, ray=False)
    on_ray = _ingest(tmp_path, "ray", spec, upload, ray=True)
    read_on_ray = _ingest(tmp_path, "ray-reads", spec, upload, ray=True, shares_disk=True)
    receipt = local["receipt"]
    assert receipt["errors"] == [{"source": f"{upload.name}/petitions.jsonl#L75", "reason": "no text"}]
    assert receipt["documents_seen"] == 149 + 12 + 4 + 2
    assert receipt["rejected"]["dedup:duplicate of an earlier contribution"] >= 12
    assert receipt["credited_tokens"] > 0
    assert on_ray["receipt"] == receipt
    assert on_ray["index"] == local["index"]
    assert len(on_ray["index"]) == receipt["documents_accepted"]
    assert on_ray["dump"] == local["dump"]
    # the local run read its seven files on its workers, the first Ray run in the driver, this
    # one on its actors: the same stream every way
    assert read_on_ray == on_ray


def test_ray_map_keeps_order_and_empty_batches(ray_runtime: RayRuntime, spec: PipelineSpec) -> None:
    """Tags come back in input order, an empty batch included, rows equal to the local executor's."""
    docs = list(iter_extract(CORPORA / "petitions" / "petitions_2019-06.jsonl", source="p"))[:70]
    raw = [(b.seq, b.table) for b in batches("u", docs, 16)]
    empty = raw[0][1].slice(0, 0)
    items = [*raw[:2], (99, empty), *raw[2:]]
    local = list(LocalExecutor(spec, workers=1).map(items))
    remote = list(RayExecutor(spec, parallelism=2, window=4).map(items))
    assert [tag for tag, _ in remote] == [0, 1, 99, 2, 3, 4]
    assert [table.num_rows for _, table in remote] == [16, 16, 0, 16, 16, 6]
    for (_, mine), (_, theirs) in zip(local, remote, strict=True):
        assert isinstance(theirs, pa.Table)
        assert theirs.equals(mine)


def test_cli_ingest_on_ray(ray_runtime: RayRuntime, tmp_path: Path) -> None:
    """`ingest --executor ray --ray-address` joins a running cluster and credits as the local run."""
    import ray

    address = ray.get_runtime_context().gcs_address
    upload = write_jsonl(tmp_path / "p.jsonl", petitions(600, 40))
    receipts = []
    for name, extra in (("local", ()), ("ray", ("--executor", "ray", "--ray-address", address))):
        home = tmp_path / name
        for args in (("init",), ("partner", "add", "A"), ("partner", "approve", "1")):
            assert run_cli(home, *args).returncode == 0
        result = run_cli(home, "ingest", "--partner", "1", *extra, str(upload), "--json")
        assert result.returncode == 0, result.stderr
        receipts.append(json.loads(result.stdout))
    assert receipts[0]["documents_seen"] == 39  # one petition in the slice has no text
    assert receipts[1] == receipts[0]
    refused = run_cli(tmp_path / "local", "ingest", "--partner", "1", "--ray-address", address, str(upload))
    assert refused.returncode != 0
    assert "--ray-address needs --executor ray" in refused.stderr
