"""A folder of document files ingested with two workers: files read on the workers, against the
same ingest reading every file in the driver (the reference), in the same run.

The folder holds every sample document of the corpora folder (HWP, HWPX, PDF) `--copies` times
under other names, as a partner's archive of office documents is: many files, each costly to read
and short once read. Copies are exact duplicates, so dedup rejects all but the first of each;
what is compared is the wall time of the whole ingest, the driver's own CPU seconds, and the
machine's CPU seconds over the run (all processes: the workers, the leak-guard indexer, and
anything else running, so run it on a quiet machine). The two ways alternate `--rounds` times;
both must give the same receipt.

    .venv/bin/python bench/bench_ingest_files.py [--copies 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench_pipeline import ingest_database
from tokenclub.curate.quality import QualitySettings
from tokenclub.ingest import extraction
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
WAYS = ("read in the driver (reference)", "read on the workers")


def build_folder(folder: Path, copies: int) -> tuple[int, float]:
    """The upload folder; its file count and MB."""
    folder.mkdir(parents=True)
    samples = sorted(p for kind in ("hwp", "hwpx", "pdf") for p in (CORPORA / "samples" / kind).iterdir())
    size = 0
    for copy in range(copies):
        for path in samples:
            data = path.read_bytes()
            (folder / f"{copy:03d}-{path.name}").write_bytes(data)
            size += len(data)
    return copies * len(samples), size / 1e6


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_once(folder: Path, work: Path, spec: PipelineSpec, on_workers: bool) -> dict[str, Any]:
    db, pid = ingest_database(work)
    job = IngestJob(pid, (folder,), spec, Fraction(1), batch_size=64, workers=2)
    least = extraction.POOL_MIN_FILES
    extraction.POOL_MIN_FILES = least if on_workers else 1 << 62
    try:
        cpu, machine, wall = time.process_time(), machine_cpu_s(), time.perf_counter()
        receipt = ingest(db, work / "home", job)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        machine = machine_cpu_s() - machine
    finally:
        extraction.POOL_MIN_FILES = least
        db.dispose()
    receipt.pop("upload_id", None)
    return {"receipt": receipt, "wall": wall, "cpu": cpu, "machine": machine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    results: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files, megabytes = build_folder(root / "upload", args.copies)
        for round_no in range(args.rounds):
            for way in WAYS if round_no % 2 == 0 else reversed(WAYS):
                work = root / f"run-{round_no}-{WAYS.index(way)}"
                work.mkdir()
                results[way].append(run_once(root / "upload", work, spec, way == WAYS[1]))
    receipts = {repr(r["receipt"]) for runs in results.values() for r in runs}
    title = f"{files} document files, {megabytes:.1f} MB, ingest with 2 workers, {args.rounds} rounds"
    table = Table(title=title)
    columns = ("files read", "wall s (median, min–max)", "driver CPU s", "machine CPU s", "÷ reference wall")
    for column in columns:
        table.add_column(column, justify="left" if column == "files read" else "right")
    reference = statistics.median(r["wall"] for r in results[WAYS[0]])
    for way in WAYS:
        walls = [r["wall"] for r in results[way]]
        median = statistics.median(walls)
        table.add_row(
            way,
            f"{median:.2f} ({min(walls):.2f}–{max(walls):.2f})",
            f"{statistics.median(r['cpu'] for r in results[way]):.2f}",
            f"{statistics.median(r['machine'] for r in results[way]):.2f}",
            f"{median / reference:.2f}",
        )
    console.print(table)
    console.print(f"receipts equal in every run: {len(receipts) == 1}")


if __name__ == "__main__":
    main()
