"""`tokenclub dedup bulk` on a Parquet corpus, in-process on the session's Ray instance."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from tests.ingest.fixtures import disguise, petitions
from tokenclub.cli.dedup_cmd import read_manifest
from tokenclub.cli.main import app
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.errors import InvalidInputError
from tokenclub.scale.runtime import RayRuntime


def _bulk(*args: str) -> Result:
    return CliRunner().invoke(app, ["dedup", "bulk", *args])


def test_bulk_dedup_command(ray_runtime: RayRuntime, tmp_path: Path) -> None:
    texts = [row["content"] for row in petitions(200, 30) if row["content"].strip()]
    texts += [disguise(text) for text in texts[:5]]  # later, disguised copies of the first five
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    table = pa.table(
        {
            "doc_id": [f"doc-{i:03d}" for i in range(len(texts))],
            "order": pa.array(range(len(texts)), pa.int64()),
            "text": texts,
        }
    )
    pq.write_table(table.slice(0, 20), corpus / "part-0.parquet")
    pq.write_table(table.slice(20), corpus / "part-1.parquet")

    result = _bulk(str(corpus), "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["documents"] == len(texts)
    assert summary["exact_duplicates"] == 5
    assert summary["kept"] == len(texts) - 5 - summary["near_duplicates"]
    decisions = pq.read_table(tmp_path / "out").sort_by("order")
    assert decisions.column("doc_id").to_pylist() == table.column("doc_id").to_pylist()
    rejected = [
        i for i, r in enumerate(decisions.column("reject_reason").to_pylist()) if r == DUPLICATE_REASON
    ]
    assert rejected[-5:] == list(range(len(texts) - 5, len(texts)))

    pq.write_table(table.drop_columns(["order"]), tmp_path / "bad.parquet")
    bad = _bulk(str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "o2"))
    assert isinstance(bad.exception, InvalidInputError)
    assert str(bad.exception).endswith("bad.parquet: missing column(s) order")
    assert not (tmp_path / "o2").exists()


def test_load_manifest_rows_and_errors(tmp_path: Path) -> None:
    manifest = tmp_path / "uploads.csv"
    manifest.write_text("partner_id,path\n3,archive/1990s\n4,/data/b.jsonl\n", encoding="utf-8")
    assert read_manifest(manifest) == [(3, tmp_path / "archive" / "1990s"), (4, Path("/data/b.jsonl"))]
    cases = {
        "partner,path\n3,a\n": "needs a header with the columns partner_id and path",
        "partner_id,path\nthree,a\n": "line 2: partner_id 'three' is not a number",
        "partner_id,path\n3,\n": "line 2: path is empty",
        "partner_id,path\n": "the manifest lists no uploads",
    }
    for text, message in cases.items():
        manifest.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInputError, match=message):
            read_manifest(manifest)
    with pytest.raises(InvalidInputError, match="cannot read the manifest"):
        read_manifest(tmp_path / "missing.csv")
