"""The trainer page's reads: exports with their manifests summarised, and one export file
streamed from its store. Only files the verified manifest names can be read, so a URL cannot
reach anything else on the store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tokenclub.db.export_schema import Export
from tokenclub.errors import NotFoundError, StateError
from tokenclub.export.catalog import export_view, list_exports
from tokenclub.export.run import MANIFEST
from tokenclub.storage import open_root

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One downloadable file of an export: its path in the export, size and checksum."""

    path: str
    kind: str
    shard: int | None
    bytes: int
    sha256: str


def _done(session: Session, export_id: int) -> Export:
    export = session.get(Export, export_id)
    if export is None:
        raise NotFoundError(f"export {export_id} does not exist")
    if export.status != "done":
        raise StateError(f"export {export_id} is {export.status}: only a finished export can be downloaded")
    return export


def read_manifest(location: str, manifest_sha256: str | None) -> tuple[bytes, dict[str, Any]]:
    """The manifest's bytes and content, refused when they differ from what the export recorded."""
    fs, root = open_root(location)
    try:
        data = fs.cat_file(f"{root}/{MANIFEST}")
    except FileNotFoundError as exc:
        raise StateError(f"{location}/{MANIFEST} is missing from the store") from exc
    if hashlib.sha256(data).hexdigest() != manifest_sha256:
        raise StateError(f"{location}/{MANIFEST} changed since the export was written")
    return data, json.loads(data)


def files_of(manifest: dict[str, Any], manifest_bytes: bytes) -> list[ExportFile]:
    """The manifest, the provenance file and every shard file, in that order."""
    files = [
        ExportFile(
            MANIFEST, "manifest", None, len(manifest_bytes), hashlib.sha256(manifest_bytes).hexdigest()
        )
    ]
    for entry in [manifest["provenance"], *manifest["files"]]:
        files.append(
            ExportFile(entry["path"], entry["format"], entry["shard"], entry["bytes"], entry["sha256"])
        )
    return files


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Per format: shard count and bytes; with the export's documents, tokens and total bytes."""
    formats: dict[str, dict[str, int]] = {}
    for entry in manifest["files"]:
        row = formats.setdefault(entry["format"], {"shards": 0, "files": 0, "bytes": 0})
        row["files"] += 1
        row["bytes"] += entry["bytes"]
    for name, row in formats.items():
        row["shards"] = len(
            {e["shard"] for e in manifest["files"] if e["format"] == name and e["shard"] is not None}
        )
    return {
        "documents": manifest["documents"],
        "tokens": manifest["tokens"],
        "bytes": sum(e["bytes"] for e in manifest["files"]) + manifest["provenance"]["bytes"],
        "formats": formats,
    }


def listed_exports(session: Session) -> list[dict[str, Any]]:
    """Every export as the catalog lists it; finished ones with their manifest's summary."""
    rows = list_exports(session)
    for row in rows:
        row["summary"] = None
        if row["status"] == "done":
            try:
                _, manifest = read_manifest(row["location"], row["manifest_sha256"])
            except (OSError, StateError) as exc:
                row["note"] = (row["note"] + " " if row["note"] else "") + str(exc)
                continue
            row["summary"] = summary(manifest)
    return rows


def export_detail(
    session: Session, export_id: int
) -> tuple[dict[str, Any], dict[str, Any], list[ExportFile]]:
    """A finished export's listing, manifest and files."""
    export = _done(session, export_id)
    data, manifest = read_manifest(export.location, export.manifest_sha256)
    return export_view(session, export), manifest, files_of(manifest, data)


def open_file(session: Session, export_id: int, name: str) -> tuple[ExportFile, Iterator[bytes], int]:
    """The named file of a finished export, a chunk iterator over its bytes on the store, and the
    export's snapshot id (for the log). The file must be one the manifest lists; the manifest
    itself is served from the verified copy."""
    export = _done(session, export_id)
    data, manifest = read_manifest(export.location, export.manifest_sha256)
    wanted = next((f for f in files_of(manifest, data) if f.path == name), None)
    if wanted is None:
        raise NotFoundError(f"export {export_id} has no file {name!r}")
    if wanted.kind == "manifest":
        return wanted, iter([data]), export.snapshot_id
    fs, root = open_root(export.location)
    try:
        reader = fs.open(f"{root}/{wanted.path}", "rb")
    except FileNotFoundError as exc:
        raise StateError(f"{export.location}/{wanted.path} is missing from the store") from exc
    return wanted, _chunks(reader), export.snapshot_id


def _chunks(reader: Any) -> Iterator[bytes]:
    """The file in chunks of CHUNK bytes, closed when the response ends (or is cut off)."""
    with reader:
        while chunk := reader.read(CHUNK):
            yield chunk
