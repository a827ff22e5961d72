"""Commands for training exports: snapshots, exports, downloads, the access log, partners' view.

Only portal users with the trainer or operator role (`--as EMAIL`) take data out; every export
and download is logged.
The export modules load pyarrow, NumPy and the tokenizer, so they are imported per command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from tokenclub.cli.output import JSON_OPTION, corpus_store, emit, print_json, print_rows, session_scope

if TYPE_CHECKING:
    from tokenclub.export.encode import Encoding

export_app = typer.Typer(
    help="Training exports: snapshots, shards, downloads (trainers and operators).", no_args_is_help=True
)

ACTOR_OPTION = typer.Option(
    ..., "--as", help="Who acts: a trainer's or operator's portal e-mail (purpose limitation)."
)
FORMAT_OPTION = typer.Option(
    ["parquet"], "--format", "-f", help="parquet, megatron, mds; repeat or comma-separate for several."
)


class Executor(StrEnum):
    LOCAL = "local"
    RAY = "ray"


@contextmanager
def ray_encoding(address: str | None, workers: int | None) -> Iterator[Encoding]:
    """Encoding on Ray actors: the cluster at `address` (`workers` actors, default one per CPU),
    or a local instance with `workers` CPUs."""
    from tokenclub.export.ray_encode import RayEncoding
    from tokenclub.scale.runtime import connect

    runtime = connect(address, num_cpus=None if address else workers)
    try:
        yield RayEncoding(workers or runtime.cpus)
    finally:
        runtime.close()


def _authorize(actor: str) -> Any:
    from tokenclub.export.access import authorize

    with session_scope() as session:
        return authorize(session, actor)


@export_app.command("snapshot")
def snapshot_create(actor: str = ACTOR_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Freeze the accepted documents of partners still in training as a new snapshot."""
    from tokenclub.cli.ingest_cmd import pipeline_spec
    from tokenclub.export.access import log_action
    from tokenclub.export.snapshot import create_snapshot
    from tokenclub.settings import get_settings

    role = _authorize(actor)
    with session_scope() as session:
        view = create_snapshot(session, actor, pipeline_spec(get_settings()))
        log_action(
            session, actor, role, "snapshot", snapshot_id=view.id, detail={"documents": view.documents}
        )
    emit(view.as_dict(), json_out, f"snapshot {view.id}")


@export_app.command("create")
def export_create(
    actor: str = ACTOR_OPTION,
    snapshot: int | None = typer.Option(None, "--snapshot", help="Export this snapshot; default a new one."),
    formats: list[str] = FORMAT_OPTION,
    to: str | None = typer.Option(
        None, "--to", help="Folder or fsspec URL; default <store>/exports/export-N."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Shuffle reproducibly with this seed."),
    shard_size: str | None = typer.Option(
        None, "--shard-size", help="Text bytes per shard (e.g. 256MiB); default TOKENCLUB_EXPORT_SHARD_BYTES."
    ),
    executor: Executor = typer.Option(
        Executor.LOCAL, "--executor", help="Where tokenizing and encoding run: here, or on Ray workers."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: start a local Ray instance)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Ray workers (default: one per CPU of the cluster)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a snapshot (a new one unless --snapshot) as shards, provenance and a manifest."""
    from tokenclub.cli.ingest_cmd import pipeline_spec
    from tokenclub.export.access import log_action
    from tokenclub.export.formats import parse_formats
    from tokenclub.export.run import ExportRequest, run_export
    from tokenclub.export.sizes import parse_size
    from tokenclub.export.snapshot import create_snapshot
    from tokenclub.home import open_database
    from tokenclub.settings import get_settings
    from tokenclub.storage import store_child
    from tokenclub.tokenizer_store import resolve_tokenizer

    if executor is not Executor.RAY and (ray_address is not None or workers is not None):
        raise typer.BadParameter("--ray-address and --workers need --executor ray")
    settings = get_settings()
    role = _authorize(actor)
    names = parse_formats(formats)
    shard_bytes = parse_size(shard_size) if shard_size else settings.export_shard_bytes
    with ExitStack() as stack:
        encoding = (
            stack.enter_context(ray_encoding(ray_address, workers)) if executor is Executor.RAY else None
        )
        if snapshot is None:
            with session_scope() as session:
                view = create_snapshot(session, actor, pipeline_spec(settings))
                log_action(
                    session,
                    actor,
                    role,
                    "snapshot",
                    snapshot_id=view.id,
                    detail={"documents": view.documents},
                )
                snapshot = view.id
        request = ExportRequest(snapshot, names, shard_bytes, seed, to)
        db = open_database(settings)
        try:
            manifest = run_export(
                db,
                corpus_store(),
                store_child(settings.home, settings.store_url, "exports"),
                resolve_tokenizer(settings),
                actor,
                role,
                request,
                encoding,
            )
        finally:
            db.dispose()
    summary = {
        key: manifest[key]
        for key in ("export_id", "snapshot_id", "formats", "documents", "tokens", "text_bytes", "seed")
    }
    summary["files"] = len(manifest["files"])
    summary["location"] = request.location or store_child(settings.home, settings.store_url, "exports") + (
        f"/export-{manifest['export_id']:06d}"
    )
    emit(manifest if json_out else summary, json_out, f"export {manifest['export_id']}")


@export_app.command("list")
def export_list(actor: str = ACTOR_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Every export, with a note where partners of its snapshot have withdrawn since."""
    from tokenclub.export.catalog import list_exports

    _authorize(actor)
    with session_scope() as session:
        rows = list_exports(session)
    if json_out:
        print_json(rows)
    else:
        print_rows(
            "exports", ("id", "snapshot_id", "status", "formats", "location", "created_by", "note"), rows
        )


@export_app.command("snapshots")
def snapshot_list(actor: str = ACTOR_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Every snapshot with its counts."""
    from tokenclub.export.snapshot import list_snapshots

    _authorize(actor)
    with session_scope() as session:
        rows = [view.as_dict() for view in list_snapshots(session)]
    if json_out:
        print_json(rows)
    else:
        print_rows(
            "snapshots", ("id", "created_at", "created_by", "documents", "tokens", "excluded_partners"), rows
        )


@export_app.command("download")
def export_download(
    export_id: int,
    to: str = typer.Option(..., "--to", help="Destination folder or fsspec URL (must hold no export)."),
    actor: str = ACTOR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Copy a finished export, verifying every checksum; the download is logged."""
    from tokenclub.export.catalog import download_export
    from tokenclub.home import open_database
    from tokenclub.settings import get_settings

    role = _authorize(actor)
    db = open_database(get_settings())
    try:
        result = download_export(db, export_id, to, actor, role)
    finally:
        db.dispose()
    emit(result, json_out, f"export {export_id} downloaded")


@export_app.command("log")
def export_log(
    actor: str = ACTOR_OPTION,
    limit: int = typer.Option(100, min=1, help="Newest entries to show."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Who snapshotted, exported and downloaded what, and when (newest first)."""
    from tokenclub.export.access import read_log

    _authorize(actor)
    with session_scope() as session:
        rows = read_log(session, limit)
    if json_out:
        print_json(rows)
    else:
        print_rows("export log", ("id", "at", "actor", "role", "action", "snapshot_id", "export_id"), rows)


@export_app.command("partner")
def export_partner(partner_id: int, json_out: bool = JSON_OPTION) -> None:
    """What a partner may see: the snapshots holding its data (its own counts only) and the models
    trained on them."""
    from tokenclub.accounts.partners import get_partner
    from tokenclub.export.registry import models_trained_on
    from tokenclub.export.snapshot import partner_snapshots

    with session_scope() as session:
        get_partner(session, partner_id)
        snapshots = partner_snapshots(session, partner_id)
        models = [m.as_dict() for m in models_trained_on(session, partner_id)]
    if json_out:
        print_json({"partner_id": partner_id, "snapshots": snapshots, "models": models})
        return
    print_rows(
        f"partner {partner_id}: snapshots with its data",
        ("snapshot_id", "created_at", "documents", "tokens"),
        snapshots,
    )
    print_rows(
        f"partner {partner_id}: models trained on its data", ("name", "snapshot_id", "served_as"), models
    )
