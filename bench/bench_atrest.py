"""What encryption at rest costs: sealed stores against the same stores in plain text.

One run, one machine, the petitions of ../shared/corpora:

* corpus parts: a batch-sized part (256 documents, as ingest writes them) written and read
  back 20 times, and one large part (the petitions ×8) once, as zstd Parquet in plain text
  (the reference), sealed whole (tokenclub's envelope: AES-256-GCM in 1 MiB chunks), and with
  Parquet modular encryption (pyarrow.parquet.encryption, AES_GCM_V1, an in-process KMS
  client, double wrapping, encrypted footer);
* raw store: `put_file` and a full read of a 64 MiB upload, plain against sealed;
* end to end: the real `ingest()` of the petitions (one worker) and `iter_corpus` over what it
  stored, in a plain home against a sealed one (best of 2).

Times are CPU seconds of the benchmark process (the machine may be shared; with one worker
ingest runs its steps in this process, so everything is counted).

Ratio = sealed ÷ plain time (1.00: free; above 1: slower). Run:
``PYTHONPATH=src .venv/bin/python bench/bench_atrest.py``
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing, open_read
from tokenclub.corpus.dump import iter_corpus
from tokenclub.corpus.store import CORPUS_SCHEMA, CorpusStore
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.extract.rawstore import RawStore
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

HERE = Path(__file__).resolve().parent
PETITIONS = HERE.parent.parent / "shared" / "corpora" / "petitions" / "petitions_2019-05.jsonl"
SEALING = Sealing(Keyring({}, "").with_new_key())
MASTER_KEYS = {name: AESGCM.generate_key(bit_length=256) for name in ("footer", "columns")}


class InProcessKms(pe.KmsClient):  # type: ignore[misc]
    """Parquet modular encryption's KMS client, wrapping with local AES-GCM master keys."""

    def __init__(self, _config: pe.KmsConnectionConfig) -> None:
        super().__init__()

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(MASTER_KEYS[master_key_identifier]).encrypt(nonce, key_bytes, None)
        return base64.b64encode(nonce + sealed).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raw = base64.b64decode(wrapped_key)
        return AESGCM(MASTER_KEYS[master_key_identifier]).decrypt(raw[:12], raw[12:], None)


CRYPTO = pe.CryptoFactory(InProcessKms)
KMS_CONFIG = pe.KmsConnectionConfig()


def _corpus_table(copies: int, limit: int | None = None) -> pa.Table:
    rows = [json.loads(line) for line in PETITIONS.open(encoding="utf-8")]
    docs = [row for _ in range(copies) for row in rows][:limit]
    n = len(docs)
    return pa.table(
        {
            "doc_id": [f"{i:032x}" for i in range(n)],
            "partner_id": [1] * n,
            "upload_id": ["u" * 32] * n,
            "source": [f"petitions.jsonl#L{i}" for i in range(n)],
            "format": ["jsonl"] * n,
            "title": [d["title"] for d in docs],
            "source_sha256": ["0" * 64] * n,
            "metadata": [json.dumps({"category": d["category"]}, ensure_ascii=False) for d in docs],
            "text": [d["content"] for d in docs],
            "words": [len(d["content"].split()) for d in docs],
            "tokens": [len(d["content"]) for d in docs],
            "dedup_key": [None] * n,
            "pii": ["{}"] * n,
            "tokenizer_fingerprint": ["f" * 64] * n,
        },
        schema=CORPUS_SCHEMA,
    )


def _timed(action: Callable[[], Any], repeat: int = 1) -> float:
    """CPU seconds of this process (the machine is shared: wall time would measure the neighbours)."""
    start = time.process_time()
    for _ in range(repeat):
        action()
    return time.process_time() - start


def _modular_write(path: Path, table: pa.Table) -> None:
    config = pe.EncryptionConfiguration(
        footer_key="footer",
        column_keys={"columns": table.schema.names},
        encryption_algorithm="AES_GCM_V1",
        data_key_length_bits=256,
        double_wrapping=True,
        plaintext_footer=False,
    )
    properties = CRYPTO.file_encryption_properties(KMS_CONFIG, config)
    pq.write_table(table, path, compression="zstd", encryption_properties=properties)


def _modular_read(path: Path) -> pa.Table:
    properties = CRYPTO.file_decryption_properties(KMS_CONFIG, pe.DecryptionConfiguration())
    return pq.read_table(path, decryption_properties=properties)


def _parts(work: Path, table: pa.Table, repeat: int) -> dict[str, tuple[float, float, int]]:
    """(write s, read s, bytes) per variant for `repeat` writes and reads of `table`."""
    out: dict[str, tuple[float, float, int]] = {}
    for name, sealing in (("plain zstd Parquet", None), ("sealed whole (envelope)", SEALING)):
        store = CorpusStore(work / name.split()[0], sealing)
        write = _timed(partial(store.write_part, "u", 0, table), repeat)
        read = _timed(partial(store.read_part, "u", 0), repeat)
        assert store.read_part("u", 0).equals(table)
        out[name] = (write, read, store.fs.size(store.part_path("u", 0)))
    path = work / "modular.parquet"
    write = _timed(lambda: _modular_write(path, table), repeat)
    read = _timed(lambda: _modular_read(path), repeat)
    assert _modular_read(path).equals(table)
    out["Parquet modular encryption"] = (write, read, path.stat().st_size)
    return out


def _raw(work: Path) -> dict[str, tuple[float, float, int]]:
    upload = work / "upload.bin"
    block = PETITIONS.read_bytes()
    with upload.open("wb") as out:
        while out.tell() < 64 * 1024 * 1024:
            out.write(block)
    out_rows: dict[str, tuple[float, float, int]] = {}
    for name, sealing in (("plain", None), ("sealed", SEALING)):
        store = RawStore(work / f"raw-{name}", sealing)
        start = time.process_time()
        digest = store.put_file(upload)
        put_s = time.process_time() - start
        out_rows[name] = (put_s, _timed(partial(_read_all, store, digest)), store.path(digest).stat().st_size)
    return out_rows


def _read_all(store: RawStore, digest: str) -> None:
    with open_read(store.fs, store.location(digest), store.sealing) as stream:
        while stream.read(1024 * 1024):
            pass


def _count(db: Database, home: Path, sealing: Sealing | None) -> int:
    return sum(1 for _ in iter_corpus(db, home, sealing=sealing))


def _end_to_end(work: Path) -> dict[str, tuple[float, float]]:
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    out: dict[str, tuple[float, float]] = {}
    for name, sealing in (("plain", None), ("sealed", SEALING)):
        best_ingest = best_dump = float("inf")
        for attempt in range(2):
            home = work / f"home-{name}-{attempt}"
            db = Database(f"sqlite:///{home}.db")
            upgrade(db.engine)
            with db.transaction() as session:
                pid = partners.apply(session, "A", threshold_words=1).id
                partners.decide(session, pid, PartnerStatus.APPROVED, 1)
            job = IngestJob(pid, (PETITIONS,), spec, Fraction(1), workers=1, sealing=sealing)
            best_ingest = min(best_ingest, _timed(partial(ingest, db, home, job)))
            best_dump = min(best_dump, _timed(partial(_count, db, home, sealing)))
            db.dispose()
        out[name] = (best_ingest, best_dump)
    return out


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="tc-bench-atrest-") as folder:
        work = Path(folder)
        batch = _corpus_table(1, 256)
        large = _corpus_table(8)
        for title, table, repeat in (
            (f"corpus part, 256 documents ({batch['text'].nbytes / 1e6:.1f} MB text) ×20", batch, 20),
            (
                f"corpus part, {large.num_rows:,} documents ({large['text'].nbytes / 1e6:.1f} MB text) ×1",
                large,
                1,
            ),
        ):
            results = _parts(work / str(repeat), table, repeat)
            plain_w, plain_r, _ = results["plain zstd Parquet"]
            grid = Table(title=title)
            for column in ("variant", "write s", "read s", "bytes", "write ÷ plain", "read ÷ plain"):
                grid.add_column(column, justify="left" if column == "variant" else "right")
            for name, (write, read, size) in results.items():
                grid.add_row(
                    name,
                    f"{write:.3f}",
                    f"{read:.3f}",
                    f"{size:,}",
                    f"{write / plain_w:.2f}",
                    f"{read / plain_r:.2f}",
                )
            console.print(grid)
        raw = _raw(work)
        grid = Table(title="raw store, 64 MiB upload")
        for column in (
            "variant",
            "put_file s",
            "read s",
            "MB/s put",
            "MB/s read",
            "put ÷ plain",
            "read ÷ plain",
        ):
            grid.add_column(column, justify="left" if column == "variant" else "right")
        for name, (put, read, _) in raw.items():
            grid.add_row(
                name,
                f"{put:.3f}",
                f"{read:.3f}",
                f"{64 * 1.048576 / put:.0f}",
                f"{64 * 1.048576 / read:.0f}",
                f"{put / raw['plain'][0]:.2f}",
                f"{read / raw['plain'][1]:.2f}",
            )
        console.print(grid)
        ends = _end_to_end(work)
        grid = Table(title=f"end to end, {PETITIONS.name} (best of 2, CPU s)")
        for column in ("home", "ingest s", "dump s", "ingest ÷ plain", "dump ÷ plain"):
            grid.add_column(column, justify="left" if column == "home" else "right")
        for name, (ingest_s, dump_s) in ends.items():
            grid.add_row(
                name,
                f"{ingest_s:.2f}",
                f"{dump_s:.3f}",
                f"{ingest_s / ends['plain'][0]:.2f}",
                f"{dump_s / ends['plain'][1]:.2f}",
            )
        console.print(grid)


if __name__ == "__main__":
    main()
