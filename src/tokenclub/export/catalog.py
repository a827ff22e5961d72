"""Listing exports, and downloading one: checksums verified on the way, manifest copied last."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.db.engine import Database
from tokenclub.db.export_schema import Export
from tokenclub.errors import InvalidInputError, NotFoundError, StateError
from tokenclub.export.access import Role, log_action
from tokenclub.export.run import MANIFEST
from tokenclub.export.sink import HashingSink, write_atomically
from tokenclub.export.snapshot import withdrawn_since
from tokenclub.storage import open_root

CHUNK = 8 * 1024 * 1024


def export_view(session: Session, export: Export) -> dict[str, Any]:
    """An export as listed; one whose snapshot holds partners that withdrew since carries a note."""
    withdrawn = withdrawn_since(session, export.snapshot_id)
    note = ""
    if withdrawn:
        ids = ", ".join(str(w["partner_id"]) for w in withdrawn)
        note = f"partner(s) {ids} withdrew after this snapshot: leave their documents out of new training"
    return {
        "id": export.id,
        "snapshot_id": export.snapshot_id,
        "status": export.status,
        "formats": json.loads(export.formats),
        "location": export.location,
        "seed": export.seed,
        "shard_bytes": export.shard_bytes,
        "created_at": export.created_at.isoformat(),
        "created_by": export.created_by,
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "manifest_sha256": export.manifest_sha256,
        "error": export.error,
        "withdrawn_since": withdrawn,
        "note": note,
    }


def list_exports(session: Session) -> list[dict[str, Any]]:
    return [export_view(session, e) for e in session.scalars(select(Export).order_by(Export.id))]


def _copy(source_fs: Any, source: str, target_fs: Any, target: str, expected: str) -> None:
    with source_fs.open(source, "rb") as reader, HashingSink(target_fs, target) as sink:
        while chunk := reader.read(CHUNK):
            sink.write(chunk)
    if sink.sha256 != expected:
        raise StateError(
            f"{source}: checksum {sink.sha256[:12]}… does not match the manifest ({expected[:12]}…)"
        )


def download_export(db: Database, export_id: int, destination: str, actor: str, role: Role) -> dict[str, Any]:
    """Copy a finished export to `destination` (any fsspec URL), verifying every checksum, and log it."""
    with db.transaction() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise NotFoundError(f"export {export_id} does not exist")
        if export.status != "done":
            raise StateError(
                f"export {export_id} is {export.status}: only a finished export can be downloaded"
            )
        location, manifest_sha = export.location, export.manifest_sha256
    source_fs, source_root = open_root(location)
    data = source_fs.cat_file(f"{source_root}/{MANIFEST}")
    if hashlib.sha256(data).hexdigest() != manifest_sha:
        raise StateError(f"{location}/{MANIFEST} changed since export {export_id} was written")
    manifest = json.loads(data)
    try:
        target_fs, target_root = open_root(destination)
    except ImportError as exc:
        raise InvalidInputError(f"cannot write to {destination}: {exc}") from exc
    try:
        if target_fs.exists(f"{target_root}/{MANIFEST}"):
            raise StateError(f"{destination} already holds an export ({MANIFEST}); choose an empty location")
        for entry in [*manifest["files"], manifest["provenance"]]:
            target = f"{target_root}/{entry['path']}"
            target_fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            _copy(source_fs, f"{source_root}/{entry['path']}", target_fs, target, entry["sha256"])
        write_atomically(target_fs, f"{target_root}/{MANIFEST}", data)
    except OSError as exc:
        raise InvalidInputError(f"cannot write to {destination}: {exc.strerror or exc}") from exc
    with db.transaction() as session:
        log_action(
            session,
            actor,
            role,
            "download",
            snapshot_id=manifest["snapshot_id"],
            export_id=export_id,
            detail={"destination": destination, "files": len(manifest["files"]) + 1},
        )
    return {
        "export_id": export_id,
        "destination": destination,
        "files": len(manifest["files"]) + 1,
        "bytes": sum(e["bytes"] for e in manifest["files"]) + manifest["provenance"]["bytes"],
    }
