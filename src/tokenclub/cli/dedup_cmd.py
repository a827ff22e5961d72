"""`tokenclub dedup bulk`: near-duplicate removal over a whole historical corpus on Ray."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from tokenclub.cli.output import JSON_OPTION, emit
from tokenclub.errors import InvalidInputError

dedup_app = typer.Typer(help="Near-duplicate removal over a whole corpus (needs the `ray` extra).")

INPUT_COLUMNS = ("doc_id", "order", "text")


def _filesystem(url: str) -> Any:
    """A pyarrow filesystem for a path or fsspec URL, so Ray reads and writes any store."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from tokenclub.storage import open_root

    fs, path = open_root(url)
    return PyFileSystem(FSSpecHandler(fs)), path


RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", help="Ray cluster to join (default: start a local Ray instance)."
)
WORKERS_OPTION = typer.Option(None, help="CPUs of a local Ray instance (default: all).")
PARTITIONS_OPTION = typer.Option(
    None, min=1, help="Hash partitions per shuffle (default: 4 per cluster CPU)."
)


@dedup_app.command("bulk")
def bulk(
    source: str = typer.Argument(
        ..., help="Parquet file or folder (path or fsspec URL) with doc_id, order (int, earlier first), text."
    ),
    out: str = typer.Option(..., "--out", help="Folder (path or fsspec URL) for the decisions as Parquet."),
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    partitions: int | None = PARTITIONS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Decide exact and near duplicates of a corpus as the incremental index would, in parallel.

    Writes one row per document: doc_id, order, reject_reason (null when kept).
    """
    from tokenclub.scale.runtime import connect

    runtime = connect(ray_address, num_cpus=workers)
    try:
        summary = _run(source, out, partitions or 4 * runtime.cpus)
    finally:
        runtime.close()
    emit(summary, json_out, "bulk dedup")


def _run(source: str, out: str, parts: int) -> dict[str, Any]:
    import ray.data

    from tokenclub.scale.bulk_dedup import bulk_dedup, with_signatures

    started = time.perf_counter()
    in_fs, in_path = _filesystem(source)
    try:
        documents = ray.data.read_parquet(in_path, filesystem=in_fs)
        names = documents.schema().names
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{source}: cannot read Parquet ({exc})") from None
    missing = [name for name in INPUT_COLUMNS if name not in names]
    if missing:
        raise InvalidInputError(f"{source}: missing column(s) {', '.join(missing)}")
    result = bulk_dedup(with_signatures(documents), parts)
    out_fs, out_path = _filesystem(out)
    result.decisions.write_parquet(out_path, filesystem=out_fs)
    duplicates = result.exact_duplicates + result.near_duplicates
    return {
        "documents": result.documents,
        "kept": result.documents - duplicates,
        "exact_duplicates": result.exact_duplicates,
        "near_duplicates": result.near_duplicates,
        "candidate_edges": result.edges,
        "label_rounds": result.rounds,
        "partitions": parts,
        "seconds": round(time.perf_counter() - started, 2),
        "out": out,
    }


def read_manifest(path: Path) -> list[tuple[int, Path]]:
    """Rows of (partner_id, path) from a CSV with those two columns, in contribution order.

    Relative paths are taken from the manifest's folder; each row is one upload.
    """
    import csv

    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"partner_id", "path"} <= set(reader.fieldnames):
                raise InvalidInputError(f"{path}: needs a header with the columns partner_id and path")
            rows = list(reader)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: the manifest is not UTF-8") from None
    uploads: list[tuple[int, Path]] = []
    for line, row in enumerate(rows, start=2):
        try:
            partner = int(row["partner_id"])
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{path}, line {line}: partner_id {row['partner_id']!r} is not a number"
            ) from None
        target = Path(row["path"] or "")
        if not row["path"]:
            raise InvalidInputError(f"{path}, line {line}: path is empty")
        uploads.append((partner, target if target.is_absolute() else path.parent / target))
    if not uploads:
        raise InvalidInputError(f"{path}: the manifest lists no uploads")
    return uploads


@dedup_app.command("load")
def load(
    manifest: Path = typer.Argument(
        ..., help="CSV with partner_id,path: one upload a row, in contribution order (earliest first)."
    ),
    ray_address: str | None = RAY_ADDRESS_OPTION,
    workers: int | None = WORKERS_OPTION,
    partitions: int | None = PARTITIONS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Load a historical corpus into an empty index: curated, deduplicated as a whole, stored,
    indexed and credited once per upload, exactly as ingesting its uploads one by one would."""
    from fractions import Fraction

    from tokenclub.atrest.objects import sealing_for
    from tokenclub.cli.ingest_cmd import pipeline_spec
    from tokenclub.extract.records import RecordOptions
    from tokenclub.home import open_database
    from tokenclub.scale.bulk_load import Contribution, bulk_load, require_empty_index
    from tokenclub.scale.ray_executor import RayExecutor
    from tokenclub.scale.runtime import connect
    from tokenclub.settings import get_settings

    uploads = read_manifest(manifest)
    settings = get_settings()
    db = open_database(settings)
    require_empty_index(db)  # before a Ray instance starts
    started = time.perf_counter()
    spec = pipeline_spec(settings)
    runtime = connect(ray_address, num_cpus=workers)
    try:
        receipts = bulk_load(
            db,
            settings.home,
            [Contribution(partner, (path,)) for partner, path in uploads],
            spec,
            Fraction(str(settings.credit_ratio)),
            batch_size=settings.batch_size,
            workers=workers or settings.workers,
            parts=partitions or 4 * runtime.cpus,
            store_url=settings.store_url,
            mapper=RayExecutor(spec, runtime.cpus),
            sealing=sealing_for(settings),
            options=RecordOptions(max_bad_byte_share=settings.max_bad_byte_share),
        )
    finally:
        runtime.close()
    summary = {
        "uploads": len(receipts),
        "documents_seen": sum(r["documents_seen"] for r in receipts),
        "documents_accepted": sum(r["documents_accepted"] for r in receipts),
        "tokens_credited": sum(r["credited_tokens"] for r in receipts),
        "free_tokens_granted": sum(r["free_tokens_granted"] for r in receipts),
        "seconds": round(time.perf_counter() - started, 2),
        "upload_ids": [r["upload_id"] for r in receipts],
    }
    emit(summary, json_out, "bulk load")
