"""Commands for contributed data: ingest an upload, dump the accepted corpus."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tokenclub.cli.output import JSON_OPTION, console, print_json, print_record, print_rows
from tokenclub.settings import Settings, get_settings

if TYPE_CHECKING:  # the pipeline's NumPy, Arrow and tokenizer load only when a command runs
    from tokenclub.db.engine import Database
    from tokenclub.ingest.service import IngestJob
    from tokenclub.pipeline.executor import Executor as PipelineExecutor
    from tokenclub.pipeline.steps import PipelineSpec


class Executor(StrEnum):
    LOCAL = "local"
    RAY = "ray"


@contextmanager
def ray_executor(spec: PipelineSpec, address: str | None, workers: int | None) -> Iterator[PipelineExecutor]:
    """A Ray executor on the cluster at `address`, or on a local instance with `workers` CPUs."""
    from tokenclub.scale.ray_executor import RayExecutor
    from tokenclub.scale.runtime import connect

    runtime = connect(address, num_cpus=workers)
    try:
        # a local instance's actors run here and read the raw store's files from this disk
        yield RayExecutor(spec, runtime.cpus, shares_disk=runtime.started)
    finally:
        runtime.close()


corpus_app = typer.Typer(help="The accepted corpus (operator view).", no_args_is_help=True)


def pipeline_spec(settings: Settings) -> PipelineSpec:
    from tokenclub.curate.quality import QualitySettings
    from tokenclub.pipeline.steps import PipelineSpec
    from tokenclub.tokenizer_store import resolve_tokenizer

    return PipelineSpec.for_tokenizer(
        resolve_tokenizer(settings), settings.hangul_threshold, QualitySettings()
    )


def _print_receipt(receipt: dict[str, Any]) -> None:
    summary = {
        key: receipt[key]
        for key in (
            "upload_id",
            "replay",
            "partner_id",
            "documents_seen",
            "documents_accepted",
            "words",
            "tokens",
            "credited_tokens",
            "free_tokens_granted",
        )
    }
    summary["tokenizer"] = receipt["tokenizer"]["fingerprint"][:16]
    print_record("receipt", summary)
    if receipt["rejected"]:
        print_rows(
            "rejected",
            ("reason", "documents"),
            [{"reason": k, "documents": v} for k, v in receipt["rejected"].items()],
        )
    if receipt.get("sql_text_columns"):
        print_rows(
            "SQL dump tables read (text columns and how they were chosen)",
            ("table", "documents"),
            [{"table": k, "documents": v} for k, v in receipt["sql_text_columns"].items()],
        )
    if receipt["pii"]:
        print_rows(
            "PII replaced", ("type", "count"), [{"type": k, "count": v} for k, v in receipt["pii"].items()]
        )
    if receipt["errors"]:
        print_rows("files that could not be read", ("source", "reason"), receipt["errors"])
    elif receipt.get("error_count"):
        print_rows(
            f"files that could not be read ({receipt['error_count']:,}, by reason; --all-errors lists them)",
            ("count", "reason", "examples"),
            [{**group, "examples": "\n".join(group["examples"])} for group in receipt["error_groups"]],
        )


def ingest_command(
    paths: list[Path] = typer.Argument(..., help="Files, archives or folders to contribute."),
    partner: int = typer.Option(..., "--partner", help="The contributing partner's ID."),
    workers: int | None = typer.Option(None, help="Worker processes (default: one per core)."),
    executor_name: Executor = typer.Option(
        Executor.LOCAL, "--executor", help="Where the steps run: local processes or Ray Data."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: start a local Ray instance)."
    ),
    all_errors: bool = typer.Option(
        False, "--all-errors", help="List every file error, however many (default: grouped past 100)."
    ),
    text_fields: list[str] = typer.Option(
        [],
        "--text-field",
        help="Field or column that holds the text in dumps (JSONL, CSV, SQL); repeat for several. "
        "Default: detected by name, else guessed (each table's choice is in the receipt).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Ingest an upload: extract, curate, deduplicate, count, store and credit it; print the receipt."""
    if ray_address is not None and executor_name is not Executor.RAY:
        raise typer.BadParameter("--ray-address needs --executor ray")
    from tokenclub.atrest.objects import sealing_for
    from tokenclub.extract.records import RecordOptions
    from tokenclub.home import open_database
    from tokenclub.ingest.service import IngestJob

    settings = get_settings()
    job = IngestJob(
        partner_id=partner,
        paths=tuple(paths),
        spec=pipeline_spec(settings),
        credit_ratio=Fraction(str(settings.credit_ratio)),
        batch_size=settings.batch_size,
        workers=workers or settings.workers,
        store_url=settings.store_url,
        options=RecordOptions(
            text_fields=tuple(text_fields) or None, max_bad_byte_share=settings.max_bad_byte_share
        ),
        sealing=sealing_for(settings),
    )
    db = open_database(settings)
    with ExitStack() as stack:
        mapper = None
        if executor_name is Executor.RAY:
            mapper = stack.enter_context(ray_executor(job.spec, ray_address, job.workers))
        receipt = _run(db, settings.home, job, mapper, json_out, all_errors)
    if json_out:
        print_json(receipt)
    else:
        _print_receipt(receipt)
    errors = receipt.get("error_count", len(receipt["errors"]))
    if receipt["documents_seen"] == 0 and errors:
        typer.echo(f"error: nothing could be read from the upload ({errors} file errors)", err=True)
        raise typer.Exit(1)


def _run(
    db: Database, home: Path, job: IngestJob, mapper: PipelineExecutor | None, quiet: bool, all_errors: bool
) -> dict[str, Any]:
    from tokenclub.ingest.service import upload_errors

    try:
        receipt = _ingest(db, home, job, mapper, quiet)
        if all_errors:
            receipt["errors"] = upload_errors(db, receipt["upload_id"])
        return receipt
    finally:
        db.dispose()


def _ingest(
    db: Database, home: Path, job: IngestJob, mapper: PipelineExecutor | None, quiet: bool
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tokenclub.ingest.receipt import BatchStats
    from tokenclub.ingest.service import ingest

    # The ingest is this process's one job: what the imports built lives to the end, and frozen
    # the cyclic collector's full collections stop traversing it (docs/scale.md).
    gc.freeze()
    if quiet:
        return ingest(db, home, job, executor=mapper)
    with Progress(
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("documents accepted"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("ingest", total=None)
        accepted = 0
        seen = 0

        def on_batch(_seq: int, stats: BatchStats) -> None:
            nonlocal accepted, seen
            accepted += stats.accepted
            seen += stats.documents
            progress.update(task, completed=accepted, total=seen)

        def on_wait(ahead: list[str]) -> None:
            progress.console.print(
                f"waiting for {len(ahead)} upload(s) that started earlier ({', '.join(ahead)}): this "
                "upload's batches are read and kept meanwhile, and committed once they finish"
            )

        return ingest(db, home, job, on_batch, executor=mapper, on_wait=on_wait)


@corpus_app.command("dump")
def corpus_dump(
    partner: int | None = typer.Option(None, "--partner", help="Only this partner's documents."),
    include_withdrawn: bool = typer.Option(
        False, "--include-withdrawn", help="Also the documents of partners that withdrew from training."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print accepted documents for training (one JSON object per line with --json); partners
    that withdrew are left out."""
    from tokenclub.atrest.objects import sealing_for
    from tokenclub.corpus.dump import iter_corpus
    from tokenclub.home import open_database

    settings = get_settings()
    db = open_database(settings)
    try:
        rows = iter_corpus(
            db, settings.home, partner, settings.store_url, include_withdrawn, sealing_for(settings)
        )
        if json_out:
            for row in rows:
                typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            print_rows(
                "accepted documents",
                ("doc_id", "partner_id", "source", "words", "tokens"),
                [{**row, "doc_id": str(row["doc_id"])[:12]} for row in rows],
            )
    finally:
        db.dispose()
