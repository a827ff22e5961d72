"""Two partners ingesting at once on PostgreSQL against the same two uploads one after the other.

Each partner's upload is half of the bench corpus (every petition and the first `--reviews` NSMC
reviews), halved by the exact dedup key, so exact copies (reposted petitions, repeated short
reviews) fall in one half and are decided inside one partner's upload; only near copies can
cross. Each run gets a fresh PostgreSQL database:

* **at once**: two processes, one per partner, start together (each a local executor with one
  worker). Their map steps overlap; the upload that registered second spools its mapped
  batches and commits them once the first has finished (`ingest/turns.py`);
* **in sequence**: one process ingests the two uploads one after the other, in the order they
  registered at once.

Throughput = MB of both uploads ÷ wall seconds. "Same credits" compares, per partner, the tokens
credited and the documents kept (a near copy across the halves goes to whichever partner
commits first, which would show here). Each way also shows the CPU seconds of its processes
(the ingests and their leak-guard indexing workers; PostgreSQL's own not counted) and the
cores they kept busy on average: a ratio near the machine's cores ÷ one upload's busy cores is
all that running at once can give.

    .venv/bin/python bench/bench_concurrent_ingest.py [--reviews 20000] [--url postgresql+psycopg://…/test]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench_pipeline import bench_texts
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.curate.dedup import dedup_key
from tokenclub.curate.quality import QualitySettings
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import CorpusDocument, Upload
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def write_halves(folder: Path, reviews: int) -> tuple[list[Path], float]:
    texts = bench_texts(reviews)
    paths = []
    for half in (0, 1):
        path = folder / f"partner-{half}" / "part.jsonl"
        path.parent.mkdir(parents=True)
        with path.open("w", encoding="utf-8") as out:
            for body in (t for t in texts if int(dedup_key(t), 16) % 2 == half):
                out.write(json.dumps({"text": body}, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths, sum(len(t.encode()) for t in texts) / 1e6


def fresh_database(admin_url: str) -> str:
    """A new, migrated database beside the admin one; its URL."""
    url = make_url(admin_url)
    name = f"tc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target = url.set(database=name).render_as_string(hide_password=False)
    db = Database(target)
    upgrade(db.engine)
    with db.transaction() as session:
        for number in (0, 1):
            pid = partners.apply(session, f"partner-{number}", threshold_words=1).id
            partners.decide(session, pid, PartnerStatus.APPROVED, 1)
    db.dispose()
    return target


def drop_database(admin_url: str, url: str) -> None:
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def ingest_one(url: str, home: str, partner_id: int, path: str) -> dict[str, Any]:
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    db = Database(url)
    try:
        return ingest(db, Path(home), IngestJob(partner_id, (Path(path),), spec, Fraction(1), workers=1))
    finally:
        db.dispose()


def outcome(url: str, receipts: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Per partner: tokens credited and documents kept."""
    db = Database(url)
    with db.transaction() as session:
        rows = session.execute(
            select(CorpusDocument.partner_id, func.count()).group_by(CorpusDocument.partner_id)
        )
        kept = {partner: count for partner, count in rows}
    db.dispose()
    return {r["partner_id"]: (r["free_tokens_granted"], kept.get(r["partner_id"], 0)) for r in receipts}


def turn_order(url: str) -> list[int]:
    """The partners in the order their uploads took their turns (who registered first)."""
    db = Database(url)
    with db.transaction() as session:
        order = list(session.scalars(select(Upload.partner_id).order_by(Upload.turn)))
    db.dispose()
    return order


def children_cpu() -> float:
    """CPU seconds of this process's finished children and theirs (the pools' workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reviews", type=int, default=20_000)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()
    console = Console(width=150)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tokenclub-concurrent-") as tmp:
        root = Path(tmp)
        paths, megabytes = write_halves(root / "in", args.reviews)
        jobs = [(1, str(paths[0])), (2, str(paths[1]))]

        url = fresh_database(args.url)
        try:
            start, cpu = time.perf_counter(), children_cpu()
            with context.Pool(2) as pool:
                running = [
                    pool.apply_async(ingest_one, (url, str(root / "par"), pid, path)) for pid, path in jobs
                ]
                at_once = [result.get() for result in running]
            parallel_wall, parallel_cpu = time.perf_counter() - start, children_cpu() - cpu
            parallel = outcome(url, at_once)
            order = turn_order(url)
        finally:
            drop_database(args.url, url)

        url = fresh_database(args.url)
        try:
            start, cpu = time.perf_counter(), children_cpu()
            with context.Pool(1) as pool:
                in_sequence = [
                    pool.apply(ingest_one, (url, str(root / "seq"), pid, path))
                    for pid, path in sorted(jobs, key=lambda job: order.index(job[0]))
                ]
            sequence_wall, sequence_cpu = time.perf_counter() - start, children_cpu() - cpu
            sequence = outcome(url, in_sequence)
        finally:
            drop_database(args.url, url)

    console.print(f"two uploads, {megabytes:.1f} MB in all, PostgreSQL; partners in turn order {order}")
    for label, wall, cpu, credits in (
        ("in sequence", sequence_wall, sequence_cpu, sequence),
        ("at once    ", parallel_wall, parallel_cpu, parallel),
    ):
        console.print(
            f"{label}: {wall:.1f} s wall, {megabytes / wall:.2f} MB/s, {cpu:.1f} CPU s "
            f"({cpu / wall:.2f} cores busy); {credits}"
        )
    totals = [tuple(map(sum, zip(*side.values(), strict=True))) for side in (sequence, parallel)]
    console.print(
        f"throughput at once ÷ in sequence: {sequence_wall / parallel_wall:.2f}×; "
        f"same credits per partner: {sequence == parallel}; "
        f"same totals (tokens, kept): {totals[0] == totals[1]}"
    )


if __name__ == "__main__":
    main()
