"""Bulk near-duplicate removal on Ray makes the incremental index's decisions."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray.data

from tests.conftest import CORPORA
from tests.ingest.fixtures import disguise, petitions, write_jsonl
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.dedup_index import DUPLICATE_REASON
from tokenclub.curate.dedup import MinHasher
from tokenclub.curate.quality import QualitySettings
from tokenclub.curate.step import REJECT
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument
from tokenclub.errors import InvalidInputError
from tokenclub.extract.reader import iter_extract
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import run_steps
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.scale.bulk_dedup import bulk_dedup, collect, with_signatures
from tokenclub.scale.dedup_parts import (
    bucket_pairs,
    confirm_pairs,
    decide,
    pair_links,
    pass_signature,
    signature_links,
)
from tokenclub.scale.runtime import RayRuntime
from tokenclub.tokenizer_store import default_tokenizer_path

UPLOAD_B_FIRST_ORDER = 1_000_000


def _signed(signatures: np.ndarray, keys: list[str]) -> pa.Table:
    hasher = MinHasher()
    bands = [[bytes(r) for r in hasher._band_keys(sig[None, :])[0]] for sig in signatures]
    return pa.table(
        {
            "doc_id": [f"d{i}" for i in range(len(keys))],
            "order": pa.array(range(len(keys)), pa.int64()),
            "dedup_key": keys,
            "minhash": [sig.astype(np.uint32).tobytes() for sig in signatures],
            "minhash_bands": pa.array(bands, pa.list_(pa.binary())),
        }
    )


def _chain() -> pa.Table:
    """A≈B (J 0.81), B≈C (J 0.81), A≉C (J 0.63); D is an exact copy of C; E is unrelated."""
    a = np.arange(128, dtype=np.uint32)
    b = a.copy()
    b[:24] += 1000
    c = b.copy()
    c[24:48] += 1000
    e = a + 5000
    return _signed(np.stack([a, b, c, c, e]), [f"{k:032x}" for k in (10, 11, 12, 12, 14)])


def test_chain_keeps_what_the_index_keeps() -> None:
    """Not the whole component: C is kept because its only near neighbour B was dropped."""
    table = _chain()
    parents = pc.list_parent_indices(table.column("minhash_bands"))
    bands = pa.table(
        {
            "band": pc.list_flatten(table.column("minhash_bands")),
            "order": pc.take(table.column("order"), parents),
        }
    )
    pairs = bucket_pairs(bands)
    candidates = sorted(set(zip(pairs.column("a").to_pylist(), pairs.column("b").to_pylist(), strict=True)))
    assert candidates == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # A and C share bands 6-15
    signatures = signature_links(table.select(["order", "minhash"]))
    carried = pass_signature(pa.concat_tables([signatures, pair_links(pairs)]))
    assert carried.num_rows == 6  # each pair once, however many bands it shares
    edges = confirm_pairs(pa.concat_tables([signatures, carried]))
    assert sorted(zip(edges.column("a").to_pylist(), edges.column("b").to_pylist(), strict=True)) == [
        (0, 1),
        (1, 2),
        (1, 3),
        (2, 3),
    ]
    assert decide(edges).column("order").to_pylist() == [1, 3]


def test_chain_on_ray(ray_runtime: RayRuntime) -> None:
    result = bulk_dedup(ray.data.from_arrow(_chain()), parts=3)
    decided = collect(result.decisions).sort_by("order")
    assert decided.column("reject_reason").to_pylist() == [
        None,
        DUPLICATE_REASON,
        None,
        DUPLICATE_REASON,
        None,
    ]
    assert (result.documents, result.exact_duplicates, result.near_duplicates) == (5, 1, 1)
    assert result.rounds == 3
    repeated = pa.concat_tables([_chain(), _chain().slice(4)])
    with pytest.raises(InvalidInputError, match=r"`order` must be unique: 1 value\(s\) occur more than once"):
        bulk_dedup(
            ray.data.from_arrow(repeated), parts=2
        )  # first offers, C reaches A's label through B, then no change


def _trim(text: str) -> str:
    """A near copy: the last sentence dropped and a few words respaced."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    return disguise(" ".join(sentences[:-1]) if len(sentences) > 3 else text + " 감사합니다.")


def _live_rows(spec: PipelineSpec, upload_id: str, path: Path, first_order: int) -> pa.Table:
    """The upload's documents as the dedup stage of ingest sees them: after every map step."""
    steps = spec()
    live = []
    for raw in batches(upload_id, iter_extract(path, source=path.name), 64):
        table = run_steps(steps, raw.table)
        table = table.filter(pc.is_null(table.column(REJECT)))
        live.append(
            pa.table(
                {
                    "doc_id": table.column("doc_id"),
                    "order": pc.add(table.column("ordinal"), first_order),
                    "text": table.column("text"),
                }
            )
        )
    return pa.concat_tables(live)


def test_bulk_equals_incremental_on_real_uploads(ray_runtime: RayRuntime, tmp_path: Path) -> None:
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    base = petitions(100, 100)
    first = base + [{**r, "content": disguise(r["content"])} for r in base[:6]]
    first += [{**r, "content": _trim(r["content"])} for r in base[6:16]]
    second = [{**r, "content": disguise(r["content"])} for r in base[20:30]]
    second += [{**r, "content": _trim(r["content"])} for r in base[30:45]]
    second += [{**r, "content": _trim(r["content"])} for r in first[-8:]]  # copies of copies
    with (CORPORA / "petitions" / "petitions_2019-06.jsonl").open(encoding="utf-8") as fh:
        second += [{"content": line} for line in fh.readlines()[:20]]
    paths = [write_jsonl(tmp_path / "a.jsonl", first), write_jsonl(tmp_path / "b.jsonl", second)]

    db = Database(f"sqlite:///{tmp_path / 'incremental.db'}")
    upgrade(db.engine)
    receipts = []
    with db.transaction() as session:
        for name in ("A", "B"):
            pid = partners.apply(session, name, threshold_words=1).id
            partners.decide(session, pid, PartnerStatus.APPROVED, 1)
    for pid, path in zip((1, 2), paths, strict=True):
        job = IngestJob(pid, (path,), spec, Fraction(1), batch_size=64, workers=1)
        receipts.append(ingest(db, tmp_path / "home", job))
    with db.transaction() as session:
        accepted = set(
            session.scalars(CorpusDocument.__table__.select().with_only_columns(CorpusDocument.doc_id))
        )
    db.dispose()

    live = pa.concat_tables(
        _live_rows(spec, receipt["upload_id"], path, first_order)
        for receipt, path, first_order in zip(receipts, paths, (0, UPLOAD_B_FIRST_ORDER), strict=True)
    )
    result = bulk_dedup(with_signatures(ray.data.from_arrow(live).repartition(2)), parts=2)
    decided = collect(result.decisions)
    kept = set(decided.filter(pc.is_null(decided.column("reject_reason"))).column("doc_id").to_pylist())
    incremental_dups = sum(r["rejected"].get(DUPLICATE_REASON, 0) for r in receipts)
    assert decided.num_rows == live.num_rows == result.documents
    assert kept == accepted
    assert result.exact_duplicates + result.near_duplicates == incremental_dups
    assert result.exact_duplicates == 15
    assert result.near_duplicates == 30
