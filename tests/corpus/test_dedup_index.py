"""The database dedup index decides like "first contribution wins" spelled out in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from tests.ingest.fixtures import disguise, petitions
from tokenclub.accounts import partners
from tokenclub.corpus.dedup_index import DUPLICATE_REASON, mark_duplicates, record_accepted, row_band_keys
from tokenclub.curate.dedup import (
    NEAR_DUPLICATE_JACCARD,
    DedupSignatureStep,
    MinHasher,
    band_key_integers,
    jaccard_estimate,
    signature_from_bytes,
)
from tokenclub.curate.step import REJECT
from tokenclub.db.engine import Database
from tokenclub.db.migrate import alembic_config
from tokenclub.db.schema import DedupBand, Upload


def _texts() -> list[str]:
    """Petitions with exact copies, disguised copies and a chain of edits planted among them."""
    base = [row["content"] for row in petitions(0, 120) if len(row["content"]) > 200]
    planted = [base[3], disguise(base[10]), base[20] + " 추가 문장입니다.", disguise(base[3]), base[40][:-30]]
    return [*base[:60], *planted, *base[60:], base[70], disguise(base[90])]


def _signed(texts: list[str], rejected: set[int]) -> pa.Table:
    table = pa.table(
        {
            "doc_id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            REJECT: [("quality:planted" if i in rejected else None) for i in range(len(texts))],
        }
    )
    return DedupSignatureStep().process(table)


def _reference(table: pa.Table) -> list[str | None]:
    """First contribution wins, with hex band keys and every comparison written out."""
    hasher = MinHasher()
    seen: set[str] = set()
    by_band: dict[bytes, list[np.ndarray]] = {}
    out: list[str | None] = table.column(REJECT).to_pylist()
    for i, (key, raw) in enumerate(
        zip(table["dedup_key"].to_pylist(), table["minhash"].to_pylist(), strict=True)
    ):
        if out[i] is not None:
            continue
        signature = signature_from_bytes(raw)
        bands = hasher.band_keys(signature)
        near = any(
            jaccard_estimate(signature, other) >= NEAR_DUPLICATE_JACCARD
            for b in bands
            for other in by_band.get(b, [])
        )
        if key in seen or near:
            out[i] = DUPLICATE_REASON
            continue
        seen.add(key)
        for b in bands:
            by_band.setdefault(b, []).append(signature)
    return out


@pytest.mark.parametrize("batch", [7, 40, 1000])
def test_decisions_equal_the_reference_across_batches(db: Database, batch: int) -> None:
    texts = _texts()
    table = _signed(texts, rejected={5, 61})
    with db.transaction() as session:
        pid = partners.apply(session, "p", threshold_words=1).id
        session.add(
            Upload(
                id="u",
                partner_id=pid,
                status="processing",
                files="[]",
                batch_size=batch,
                tokenizer_fingerprint="f",
            )
        )
    decided = []
    for seq, lo in enumerate(range(0, table.num_rows, batch)):
        part = table.slice(lo, batch).append_column(
            "source", pa.array(["s"] * min(batch, table.num_rows - lo))
        )
        part = part.append_column("words", pa.array([1] * part.num_rows, pa.int64())).append_column(
            "tokens", pa.array([1] * part.num_rows, pa.int64())
        )
        with db.transaction() as session:
            out = mark_duplicates(session, part)
            record_accepted(session, "u", pid, "f", seq, out.filter(pc.is_null(out.column(REJECT))))
        decided += out.column(REJECT).to_pylist()
    expected = _reference(table)
    assert decided == expected
    assert expected.count(DUPLICATE_REASON) == 6
    kept = expected.count(None)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(DedupBand)) == 16 * kept


def test_band_key_integers_are_stable_and_per_band() -> None:
    table = _signed(["가나다라마바사아자차카타파하 " * 5, "하파타카차자아사바마라다나가 " * 5], set())
    keys = row_band_keys(table.column("minhash_bands"))
    assert [len(row) for row in keys] == [16, 16]
    assert len(set(keys[0]) | set(keys[1])) == 32
    again = band_key_integers(pc.list_flatten(table.column("minhash_bands")))
    assert again.tolist() == keys[0] + keys[1]
    with pytest.raises(ValueError, match="10 bytes"):
        band_key_integers(pa.array([b"short"], pa.binary()))


def test_rows_without_bands_have_no_keys() -> None:
    table = _signed(["가나다라마바사아자차카타파하", "다른 문서입니다 가나다라"], {0})
    assert [len(row) for row in row_band_keys(table.column("minhash_bands"))] == [0, 16]


def test_migration_converts_stored_hex_keys_and_back(tmp_path: Path) -> None:
    """0015 turns the hex band keys of an existing index into the integers ingest now writes;
    its downgrade recomputes the hex keys from the stored signatures."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    table = _signed(_texts()[:3], set())
    engine = create_engine(url)
    with engine.begin() as connection:
        # a plain engine: SQLite leaves foreign keys unchecked, so no partner or upload rows
        for doc_id, key, minhash, bands in zip(
            *(table[c].to_pylist() for c in ("doc_id", "dedup_key", "minhash", "minhash_bands")), strict=True
        ):
            connection.execute(
                text(
                    "INSERT INTO corpus_documents (doc_id, dedup_key, upload_id, partner_id, batch_seq,"
                    " source, words, tokens, tokenizer_fingerprint, minhash, created_at)"
                    " VALUES (:d, :k, 'u', 1, 0, 's', 1, 1, 'f', :m, '2026-01-01')"
                ),
                {"d": doc_id, "k": key, "m": minhash},
            )
            for band in bands:
                connection.execute(
                    text("INSERT INTO dedup_bands (band_key, doc_id) VALUES (:b, :d)"),
                    {"b": band.hex(), "d": doc_id},
                )
    command.upgrade(config, "0015")
    expected = {
        (key, f"d{i}") for i, row in enumerate(row_band_keys(table.column("minhash_bands"))) for key in row
    }
    with engine.connect() as connection:
        assert set(connection.execute(text("SELECT band_key, doc_id FROM dedup_band_keys"))) == expected
    command.downgrade(config, "0008")
    with engine.connect() as connection:
        assert set(connection.execute(text("SELECT band_key, doc_id FROM dedup_bands"))) == {
            (band.hex(), f"d{i}") for i, row in enumerate(table["minhash_bands"].to_pylist()) for band in row
        }
    engine.dispose()
