"""Training-export throughput per core, per format, against datatrove's writers on the same snapshot.

One run, one machine. The open corpus's petitions (every month in ../shared/corpora) become one
partner's accepted corpus (parts of 256 documents, counted with the pinned tokenizer; curation
is not what is measured here), one snapshot is taken, and each format is exported alone:

* tokenclub: ``run_export`` end to end (corpus parts read through the corpus store, shards,
  provenance, manifest) for ``parquet``, ``megatron`` (tokenized, EOD after every document) and
  ``mds``, in CPU seconds of all threads (the Rust tokenizer runs threads).
* datatrove (bench/.venv-datatrove, see setup_datatrove.sh): its ParquetWriter (zstd) and its
  DocumentTokenizer (the same tokenizer file and EOD token, no shuffle) over the same documents
  in the same order, timed alike in CPU seconds.

MB/s per core = MB of UTF-8 text ÷ CPU seconds. Ratio = tokenclub ÷ datatrove (> 1: tokenclub
is faster). Also: shard bytes per token for every format (corpus tokens, EOD excluded).

Then, when the ``ray`` extra is installed, ``--executor ray``: each format exported here and on a
local Ray instance with `RAY_WORKERS` workers (one tokenizer thread each), in wall seconds (the
workers' CPU is not this process's), alternately, `ROUNDS` times, best of each; the checksums of
both must match. Ratio = local wall ÷ Ray wall (> 1: Ray is faster). The driver's CPU seconds
in the Ray run give its ceiling (reading, decrypting, cutting, writing) and, with the local
per-core rate of the encoding, the projected cores for 1 GB/min.
Run: ``bash bench/setup_datatrove.sh && .venv/bin/python bench/bench_export.py``
(``DATATROVE_PYTHON=/path/to/python`` uses another datatrove environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.store import CorpusStore
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument, Upload, UploadBatch
from tokenclub.errors import TokenclubError
from tokenclub.export.access import Role
from tokenclub.export.run import ExportRequest, run_export
from tokenclub.export.snapshot import create_snapshot
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer import TokenCounter, count_words
from tokenclub.tokenizer_store import default_tokenizer_path

HERE = Path(__file__).resolve().parent
CORPORA = HERE.parent.parent / "shared" / "corpora"
DATATROVE_PYTHON = Path(os.environ.get("DATATROVE_PYTHON") or HERE / ".venv-datatrove" / "bin" / "python")
PART = 256
SHARD_BYTES = 64 * 2**20
RAY_WORKERS = 2
ROUNDS = 2
TARGET_MB_S = 1000 / 60
"""1 GB/min."""


def load_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted((CORPORA / "petitions").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["content"] for line in fh]
    return [t for t in texts if t.strip()]


def build_corpus(home: Path, texts: list[str]) -> tuple[Database, PipelineSpec]:
    """One partner's accepted corpus, written as ingest leaves it: parts plus document rows."""
    db = Database(f"sqlite:///{home / 'bench.db'}")
    upgrade(db.engine)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.5, QualitySettings())
    counter = TokenCounter(default_tokenizer_path())
    store = CorpusStore(home / "corpus")
    with db.transaction() as session:
        pid = partners.apply(session, "bench", threshold_words=1).id
        partners.decide(session, pid, PartnerStatus.APPROVED, 1)
        session.add(
            Upload(
                id="bench",
                partner_id=pid,
                status="done",
                files="[]",
                batch_size=PART,
                tokenizer_fingerprint=counter.fingerprint,
            )
        )
        session.flush()
        for seq, start in enumerate(range(0, len(texts), PART)):
            chunk = texts[start : start + PART]
            ids = [f"{start + i:012d}" for i in range(len(chunk))]
            tokens = counter.count(chunk)
            words = [count_words(t) for t in chunk]
            n = len(chunk)
            store.write_part(
                "bench",
                seq,
                pa.table(
                    {
                        "doc_id": ids,
                        "partner_id": [pid] * n,
                        "upload_id": ["bench"] * n,
                        "source": ["petitions"] * n,
                        "format": ["jsonl"] * n,
                        "title": [""] * n,
                        "source_sha256": [""] * n,
                        "metadata": ["{}"] * n,
                        "text": chunk,
                        "words": words,
                        "tokens": tokens,
                        "dedup_key": ids,
                        "pii": ["{}"] * n,
                        "tokenizer_fingerprint": [counter.fingerprint] * n,
                    }
                ),
            )
            session.add_all(
                CorpusDocument(
                    doc_id=d,
                    dedup_key=d,
                    upload_id="bench",
                    partner_id=pid,
                    batch_seq=seq,
                    source="petitions",
                    words=w,
                    tokens=t,
                    tokenizer_fingerprint=counter.fingerprint,
                    minhash=b"",
                )
                for d, w, t in zip(ids, words, tokens, strict=True)
            )
            session.add(UploadBatch(upload_id="bench", seq=seq, stats="{}"))
    return db, spec


def tokenclub_side(db: Database, home: Path, snapshot_id: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("parquet", "megatron", "mds"):
        start = time.process_time()
        manifest = run_export(
            db,
            CorpusStore(home / "corpus"),
            str(home / "exports"),
            default_tokenizer_path(),
            "bench",
            Role.OPERATOR,
            ExportRequest(snapshot_id, (name,), SHARD_BYTES, location=str(home / name)),
        )
        seconds = time.process_time() - start
        shard_bytes = sum(f["bytes"] for f in manifest["files"])
        out[name] = {"seconds": seconds, "bytes": shard_bytes, "manifest": manifest}
    return out


def _export(
    db: Database, home: Path, snapshot_id: int, name: str, where: str, encoding: Any
) -> dict[str, Any]:
    location = home / where
    if location.exists():
        shutil.rmtree(location)
    manifest: dict[str, Any] = run_export(
        db,
        CorpusStore(home / "corpus"),
        str(home / "exports"),
        default_tokenizer_path(),
        "bench",
        Role.OPERATOR,
        ExportRequest(snapshot_id, (name,), SHARD_BYTES, location=str(location)),
        encoding,
    )
    return manifest


def ray_side(db: Database, home: Path, snapshot_id: int) -> dict[str, dict[str, float]] | None:
    """Wall seconds here and on Ray (best of `ROUNDS`), and the driver's CPU seconds on Ray."""
    try:
        from tokenclub.export.ray_encode import RayEncoding
        from tokenclub.scale.runtime import connect
    except ImportError:
        return None
    try:
        runtime = connect(num_cpus=RAY_WORKERS)
    except TokenclubError:
        return None
    out: dict[str, dict[str, float]] = {}
    try:
        for name in ("parquet", "megatron", "mds"):
            row = {"local": float("inf"), "ray": float("inf"), "driver_cpu": float("inf")}
            for _ in range(ROUNDS):
                start = time.perf_counter()
                local = _export(db, home, snapshot_id, name, f"local-{name}", None)
                row["local"] = min(row["local"], time.perf_counter() - start)
                start, cpu = time.perf_counter(), time.process_time()
                ray = _export(db, home, snapshot_id, name, f"ray-{name}", RayEncoding(RAY_WORKERS))
                row["ray"] = min(row["ray"], time.perf_counter() - start)
                row["driver_cpu"] = min(row["driver_cpu"], time.process_time() - cpu)
                sums = [[(f["path"], f["sha256"]) for f in m["files"]] for m in (local, ray)]
                assert sums[0] == sums[1], f"{name}: the Ray export differs from the local one"
            out[name] = row
    finally:
        runtime.close()
    return out


def datatrove_side(home: Path, order: list[str], texts: dict[str, str]) -> dict[str, Any] | None:
    if not DATATROVE_PYTHON.exists():
        return None
    source = home / "snapshot.jsonl"
    with source.open("w", encoding="utf-8") as fh:
        for doc_id in order:
            fh.write(json.dumps({"id": doc_id, "text": texts[doc_id]}, ensure_ascii=False) + "\n")
    result = subprocess.run(
        [
            str(DATATROVE_PYTHON),
            str(HERE / "datatrove_export_side.py"),
            str(source),
            str(home / "datatrove"),
            str(default_tokenizer_path()),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "true"},
    )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    console = Console(width=120)
    texts = load_texts()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        db, spec = build_corpus(home, texts)
        with db.transaction() as session:
            snap = create_snapshot(session, "bench", spec)
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        ours = tokenclub_side(db, home, snap.id)
        order = pq.read_table(home / "parquet" / "provenance.parquet").column("doc_id").to_pylist()
        by_id = {f"{i:012d}": t for i, t in enumerate(texts)}
        theirs = datatrove_side(home, order, by_id)
        scaled = ray_side(db, home, snap.id)
        db.dispose()
    tokens = snap.tokens
    table = Table(
        title=f"export, {len(texts):,} petitions, {mb:.1f} MB of text, {tokens:,} tokens, one snapshot"
    )
    for column in ("format", "tokenclub MB/s/core", "datatrove MB/s/core", "ratio", "shard bytes/token"):
        table.add_column(column)
    reference = {"parquet": "parquet", "megatron": "tokenize"}
    for name, row in ours.items():
        rate = mb / row["seconds"]
        key = reference.get(name)
        theirs_rate = mb / theirs[f"{key}_seconds"] if theirs and key else None
        table.add_row(
            name,
            f"{rate:.2f}",
            f"{theirs_rate:.2f}" if theirs_rate else "—",
            f"{rate / theirs_rate:.2f}" if theirs_rate else "—",
            f"{row['bytes'] / tokens:.3f}",
        )
    if theirs:
        table.add_row("datatrove parquet", "", "", "", f"{theirs['parquet_bytes'] / tokens:.3f}")
        table.add_row("datatrove tokens (.ds)", "", "", "", f"{theirs['tokenize_bytes'] / tokens:.3f}")
    console.print(table)
    console.print(
        f"megatron tokens written (with EOD): {ours['megatron']['manifest']['megatron']['tokens']:,}; "
        f"datatrove {theirs['version'] if theirs else 'not installed (bash bench/setup_datatrove.sh)'}; "
        f"CPU seconds: "
        + ", ".join(f"{k} {v['seconds']:.2f}" for k, v in ours.items())
        + (
            f", datatrove parquet {theirs['parquet_seconds']:.2f}, tokenize {theirs['tokenize_seconds']:.2f}"
            if theirs
            else ""
        )
    )
    if scaled is None:
        console.print("ray: not installed (pip install 'tokenclub[ray]'), --executor ray not measured")
        return
    ray_table = Table(
        title=f"--executor ray ({RAY_WORKERS} workers, local instance) against local, same snapshot, "
        f"wall seconds (best of {ROUNDS}); byte-identical checksums checked"
    )
    for column in (
        "format",
        "local s",
        "ray s",
        "ratio local/ray",
        "driver MB/s/core",
        "tokenize MB/s/core",
        "cores for 1 GB/min",
    ):
        ray_table.add_column(column)
    for name, row in scaled.items():
        driver_rate = mb / row["driver_cpu"]
        encode, cores = "— (in the driver)", "—"
        if name == "megatron":
            # Tokenizing's per-core rate: the local export's CPU seconds less the driver's share.
            encode_rate = mb / max(ours[name]["seconds"] - row["driver_cpu"], 1e-9)
            encode = f"{encode_rate:.2f}"
            cores = (
                f"{TARGET_MB_S / encode_rate:.1f} + 1 driver"
                if driver_rate >= TARGET_MB_S
                else f"driver-bound ({driver_rate:.1f} MB/s)"
            )
        ray_table.add_row(
            name,
            f"{row['local']:.2f}",
            f"{row['ray']:.2f}",
            f"{row['local'] / row['ray']:.2f}",
            f"{driver_rate:.1f}",
            encode,
            cores,
        )
    console.print(ray_table)


if __name__ == "__main__":
    main()
