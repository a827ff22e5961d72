"""`tokenclub dedup bulk`: near-duplicate removal over a whole historical corpus on Ray."""

from __future__ import annotations

import time
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


@dedup_app.command("bulk")
def bulk(
    source: str = typer.Argument(
        ..., help="Parquet file or folder (path or fsspec URL) with doc_id, order (int, earlier first), text."
    ),
    out: str = typer.Option(..., "--out", help="Folder (path or fsspec URL) for the decisions as Parquet."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: start a local Ray instance)."
    ),
    workers: int | None = typer.Option(None, help="CPUs of a local Ray instance (default: all)."),
    partitions: int | None = typer.Option(
        None, min=1, help="Hash partitions per shuffle (default: 4 per cluster CPU)."
    ),
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
