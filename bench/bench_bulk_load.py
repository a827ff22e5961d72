"""Bulk load against upload-by-upload ingest: the same credits to the same partners, and wall times.

The corpus: every petition and the first `--reviews` NSMC reviews (200,000 by default: 203,021
documents, 25.5 MB), in that order, cut into `--uploads` consecutive JSONL uploads that
`--partners` partners contribute in turn (upload i belongs to partner i mod partners). The
corpus carries its own copies (reposted petitions, repeated short reviews), so later uploads
lose documents to earlier ones.

1. **upload by upload**: `ingest` of each upload in contribution order (local executor,
   `--workers` processes) into one SQLite database;
2. **bulk**: `bulk_load` of the same uploads (stage, the bulk dedup job on a local Ray instance
   of `--workers` CPUs, commit) into a second SQLite database.

Printed: wall seconds of each, documents kept and tokens credited per partner on each side, and
whether the receipts (upload ids aside), the credits and the kept documents are equal.

    .venv/bin/python bench/bench_bulk_load.py [--reviews 200000] [--uploads 8] [--partners 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bench_pipeline import bench_texts
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.scale.bulk_load import Contribution, bulk_load
from tokenclub.scale.runtime import connect
from tokenclub.tokenizer_store import default_tokenizer_path


def write_uploads(folder: Path, reviews: int, uploads: int) -> tuple[list[Path], int, float]:
    """The corpus cut into `uploads` JSONL files; their paths, document count and MB of text."""
    texts = bench_texts(reviews)
    size = -(-len(texts) // uploads)
    paths = []
    for number in range(uploads):
        path = folder / f"upload-{number:02d}" / "part.jsonl"
        path.parent.mkdir(parents=True)
        with path.open("w", encoding="utf-8") as out:
            for text in texts[number * size : (number + 1) * size]:
                out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths, len(texts), sum(len(t.encode()) for t in texts) / 1e6


def fresh_database(path: Path, count: int) -> tuple[Database, list[int]]:
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    ids = []
    with db.transaction() as session:
        for number in range(count):
            ids.append(partners.apply(session, f"partner-{number}", threshold_words=1).id)
            partners.decide(session, ids[-1], PartnerStatus.APPROVED, 1)
    return db, ids


def outcome(db: Database, receipts: list[dict[str, Any]]) -> dict[str, Any]:
    credited: Counter[int] = Counter()
    for receipt in receipts:
        credited[receipt["partner_id"]] += receipt["free_tokens_granted"]
    with db.transaction() as session:
        kept = Counter(session.scalars(select(CorpusDocument.partner_id)))
        documents = sorted(session.scalars(select(CorpusDocument.doc_id)))
    stripped = [{k: v for k, v in r.items() if k != "upload_id"} for r in receipts]
    return {"credited": dict(credited), "kept": dict(kept), "documents": documents, "receipts": stripped}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=200_000)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--partners", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parts", type=int, default=8)
    args = parser.parse_args()
    console = Console(width=150)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    with tempfile.TemporaryDirectory(prefix="tokenclub-bulk-bench-") as tmp:
        root = Path(tmp)
        paths, documents, megabytes = write_uploads(root / "in", args.reviews, args.uploads)
        owner = [number % args.partners for number in range(args.uploads)]

        db, ids = fresh_database(root / "incremental.db", args.partners)
        start = time.perf_counter()
        receipts = [
            ingest(
                db,
                root / "home1",
                IngestJob(ids[who], (path,), spec, Fraction(1), workers=args.workers),
            )
            for who, path in zip(owner, paths, strict=True)
        ]
        incremental_wall = time.perf_counter() - start
        incremental = outcome(db, receipts)
        db.dispose()

        db, ids = fresh_database(root / "bulk.db", args.partners)
        runtime = connect(num_cpus=args.workers)
        try:
            start = time.perf_counter()
            loaded = bulk_load(
                db,
                root / "home2",
                [Contribution(ids[who], (path,)) for who, path in zip(owner, paths, strict=True)],
                spec,
                Fraction(1),
                workers=args.workers,
                parts=args.parts,
            )
            bulk_wall = time.perf_counter() - start
        finally:
            runtime.close()
        bulk = outcome(db, loaded)
        db.dispose()

    title = f"{documents:,} documents, {megabytes:.1f} MB, {args.uploads} uploads of {args.partners} partners"
    table = Table(title=title)
    for column in ("partner", "kept: one by one", "kept: bulk", "credited: one by one", "credited: bulk"):
        table.add_column(column, justify="right")
    for pid in sorted(incremental["credited"]):
        table.add_row(
            str(pid),
            f"{incremental['kept'].get(pid, 0):,}",
            f"{bulk['kept'].get(pid, 0):,}",
            f"{incremental['credited'][pid]:,}",
            f"{bulk['credited'].get(pid, 0):,}",
        )
    console.print(table)
    console.print(
        f"wall: upload by upload {incremental_wall:.1f} s, bulk load {bulk_wall:.1f} s "
        f"({args.workers} workers); receipts equal: {incremental['receipts'] == bulk['receipts']}, "
        f"credits equal: {incremental['credited'] == bulk['credited']}, "
        f"kept documents equal: {incremental['documents'] == bulk['documents']}"
    )
    if incremental["credited"] != bulk["credited"] or incremental["documents"] != bulk["documents"]:
        raise SystemExit("the bulk load credits or keeps differently from upload-by-upload ingest")


if __name__ == "__main__":
    main()
