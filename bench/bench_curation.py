"""Curation throughput on the open corpus: each step alone and the whole pipeline end to end.

Input: all petitions (JSONL, long formal text) plus the first 50,000 NSMC reviews (short,
informal). Per step: the step's `process` on Arrow batches of 256 documents in this process
(MB of input text per CPU-second, documents per second). End to end: extraction → batching →
every step, with the local executor on 1 and on 2 worker processes (MB/s of wall time, and per
core). The named reference, in the same run, is the floor any pipeline pays: reading the same
JSONL with `json.loads`.

Run: ``.venv/bin/python bench/bench_curation.py``
"""

from __future__ import annotations

import gzip
import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from tokenclub.curate.quality import QualitySettings
from tokenclub.curate.step import Step
from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.reader import iter_extract
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import LocalExecutor
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.tokenizer_store import default_tokenizer_path

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
BATCH = 256
REVIEWS = 50_000


def build_input(folder: Path) -> list[Path]:
    """The petitions as they are, and a slice of the reviews as a JSONL file of its own."""
    reviews = folder / "reviews.jsonl"
    with gzip.open(CORPORA / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as source:
        reviews.write_text("".join(itertools.islice(source, REVIEWS)), encoding="utf-8")
    return [*sorted((CORPORA / "petitions").glob("*.jsonl")), reviews]


def read_documents(paths: list[Path]) -> Iterator[ExtractedDocument]:
    for path in paths:
        for item in iter_extract(path, source=path.name):
            if isinstance(item, ExtractedDocument):
                yield item


def reference_json(paths: list[Path]) -> tuple[float, int]:
    start = time.process_time()
    count = 0
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                json.loads(line)
                count += 1
    return time.process_time() - start, count


def per_step(spec: PipelineSpec, tables: list[pa.Table]) -> list[tuple[str, float]]:
    """CPU seconds of each step over all batches, feeding each step the previous one's output."""
    steps: list[Step] = list(spec())
    seconds = []
    current = tables
    for step in steps:
        start = time.process_time()
        current = [step.process(table) for table in current]
        seconds.append((step.name, time.process_time() - start))
    return seconds


def end_to_end(spec: PipelineSpec, paths: list[Path], workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    items = ((raw.seq, raw.table) for raw in batches("bench", read_documents(paths), BATCH))
    kept = 0
    for _, table in LocalExecutor(spec, workers).map(items):
        kept += table.column("reject_reason").null_count
    return time.perf_counter() - start, kept


def main() -> None:
    console = Console()
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_input(Path(tmp))
        docs = list(read_documents(paths))
        megabytes = sum(len(d.text.encode()) for d in docs) / 1e6
        tables = [raw.table for raw in batches("bench", iter(docs), BATCH)]
        ref_seconds, ref_docs = reference_json(paths)
        steps = per_step(spec, tables)
        runs = [(workers, *end_to_end(spec, paths, workers)) for workers in (1, 2)]

    table = Table(title=f"curation throughput: {len(docs):,} documents, {megabytes:.1f} MB of text")
    for column in ("stage", "CPU or wall s", "MB/s per core", "docs/s", "÷ json.loads reference"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    ref_rate = megabytes / ref_seconds
    table.add_row(
        "reference: json.loads of the same JSONL",
        f"{ref_seconds:.2f}",
        f"{ref_rate:.1f}",
        f"{ref_docs / ref_seconds:,.0f}",
        "1.00",
    )
    for name, seconds in steps:
        rate = megabytes / seconds
        table.add_row(
            f"step: {name}",
            f"{seconds:.2f}",
            f"{rate:.1f}",
            f"{len(docs) / seconds:,.0f}",
            f"{rate / ref_rate:.3f}",
        )
    for workers, seconds, kept in runs:
        rate = megabytes / seconds
        table.add_row(
            f"end to end, {workers} worker(s), {kept:,} kept",
            f"{seconds:.2f}",
            f"{rate / workers:.1f}",
            f"{len(docs) / seconds:,.0f}",
            f"{rate / workers / ref_rate:.3f}",
        )
    console.print(table)
    console.print(
        "Per-step rows are CPU time in this process; end-to-end rows are wall time including "
        "extraction (MB/s per core = MB/s ÷ workers). The machine has 2 shared cores."
    )


if __name__ == "__main__":
    main()
