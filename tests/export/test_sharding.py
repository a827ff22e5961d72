"""Shard boundaries: every document once, in order, and a shard closes at the first document that
fills it (property-tested over random document sizes, batch splits and shard sizes)."""

from __future__ import annotations

import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenclub.export.run import ExportRequest, _Exporter


def _batches(sizes: list[int], cut: int) -> list[pa.Table]:
    rows = {
        "doc_id": [f"d{i:04d}" for i in range(len(sizes))],
        "partner_id": [i % 3 + 1 for i in range(len(sizes))],
        "upload_id": ["u"] * len(sizes),
        "text": ["가" * (n // 3) + "a" * (n % 3) for n in sizes],  # n UTF-8 bytes
        "tokens": sizes,
    }
    table = pa.table(rows)
    return [table.slice(i, cut) for i in range(0, table.num_rows, cut)]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60),
    cut=st.integers(min_value=1, max_value=17),
    limit=st.integers(min_value=1, max_value=120),
)
def test_shards_close_at_the_first_document_that_fills_them(sizes: list[int], cut: int, limit: int) -> None:
    fs = fsspec.filesystem("memory")
    root = f"/shards-{uuid.uuid4().hex}"
    exporter = _Exporter(fs, root, ExportRequest(1, ("parquet", "mds"), limit), None)
    provenance = exporter.run(iter(_batches(sizes, cut)))
    with fs.open(f"{root}/{provenance.path}", "rb") as fh:
        rows = pq.read_table(fh).to_pylist()
    assert [r["doc_id"] for r in rows] == [f"d{i:04d}" for i in range(len(sizes))]
    shards: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        assert row["row"] == len(shards.setdefault(row["shard"], []))
        shards[row["shard"]].append(sizes[index])
    assert sorted(shards) == list(range(len(shards)))
    for shard, members in shards.items():
        if shard < len(shards) - 1:
            assert sum(members) >= limit > sum(members[:-1])
        else:
            assert sum(members[:-1]) < limit
    parquet = [f for f in exporter.files if f.format == "parquet"]
    mds = [f for f in exporter.files if f.format == "mds" and f.shard is not None]
    assert (
        [f.documents for f in parquet]
        == [f.documents for f in mds]
        == [len(shards[s]) for s in sorted(shards)]
    )
    assert exporter.partners == {
        pid: [
            sum(1 for i in range(len(sizes)) if i % 3 + 1 == pid),
            sum(s for i, s in enumerate(sizes) if i % 3 + 1 == pid),
        ]
        for pid in {i % 3 + 1 for i in range(len(sizes))}
    }
