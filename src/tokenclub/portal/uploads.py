"""Chunked, resumable uploads in the shape of OpenAI's Uploads API, staged on disk part by part.

A part is streamed to its own file while its SHA-256 is computed, so no request holds more
than one read buffer in memory; the declared size bounds every write, so a client cannot fill
the disk past what it announced. Completing concatenates the parts in the order the client
names (streamed again), checks the size and the optional MD5, and queues a contribution for
the ingest workers; nothing is queued unless every check passed.

Given a `Sealing`, staged parts and the joined file are sealed as the raw store's objects are
(`atrest`): the plaintext the client sent never lies on disk, the checksums are still of that
plaintext, and the worker reads the joined file through the same key (`IngestJob.sealed_sources`).
Staging files are 0600 and folders 0700 either way.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, BinaryIO

from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tokenclub.accounts.partners import require_approved
from tokenclub.atrest.objects import Sealing, make_private_dirs, open_read, open_write
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import Contribution, DataUpload, UploadPart
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, NotFoundError, StateError

CHUNK = 1024 * 1024
UPLOAD_TTL = timedelta(hours=1)
_FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")
_LOCAL = LocalFileSystem()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def staging_dir(home: Path, upload_id: str) -> Path:
    return home / "staging" / upload_id


def assembled_path(home: Path, upload: DataUpload) -> Path:
    return staging_dir(home, upload.id) / "file" / upload.filename


@dataclass(frozen=True, slots=True)
class Limits:
    """Largest upload and largest single part, in bytes (settings)."""

    max_upload_bytes: int
    max_part_bytes: int


def clean_filename(name: str) -> str:
    base = name.strip()
    if not _FILENAME.match(base) or base in (".", ".."):
        raise InvalidInputError(f"filename {name!r} must be 1..255 characters without slashes")
    return base


def create_upload(
    session: Session,
    partner_id: int,
    *,
    filename: str,
    purpose: str,
    size: int,
    mime_type: str,
    limits: Limits,
) -> DataUpload:
    require_approved(session, partner_id)
    if size < 1:
        raise InvalidInputError("bytes: an upload must announce at least 1 byte")
    if size > limits.max_upload_bytes:
        raise InvalidInputError(
            f"bytes: {size:,} exceeds the upload size limit of {limits.max_upload_bytes:,} bytes"
        )
    now = utcnow()
    upload = DataUpload(
        id=new_id("upload"),
        partner_id=partner_id,
        filename=clean_filename(filename),
        purpose=purpose[:32],
        mime_type=mime_type[:128],
        bytes=size,
        received_bytes=0,
        status="pending",
        created_at=now,
        expires_at=now + UPLOAD_TTL,
    )
    session.add(upload)
    session.flush()
    return upload


def get_upload(session: Session, upload_id: str, partner_id: int) -> DataUpload:
    """A partner's own upload; another partner's is reported as missing, never as forbidden."""
    upload = session.get(DataUpload, upload_id)
    if upload is None or upload.partner_id != partner_id:
        raise NotFoundError(f"upload {upload_id} does not exist")
    return upload


def _open_for_parts(session: Session, upload_id: str, partner_id: int) -> DataUpload:
    upload = get_upload(session, upload_id, partner_id)
    if upload.status == "pending" and upload.expires_at <= utcnow():
        upload.status = "expired"
    if upload.status != "pending":
        raise StateError(f"upload {upload_id} is {upload.status}; parts can only be added while pending")
    return upload


class PartSink:
    """One part being received: bytes go straight to a temporary file, hashed on the way.

    Writing past `room` (what the upload still lacks, at most the part limit) raises at once, so
    an oversized part is cut off mid-stream rather than stored and then refused.
    """

    def __init__(
        self, upload: DataUpload, folder: Path, room: int, limits: Limits, sealing: Sealing | None = None
    ) -> None:
        self.upload_id = upload.id
        self.announced = upload.bytes
        self.received_before = upload.received_bytes
        self.part_limit = limits.max_part_bytes
        self.room = room
        self.part_id = new_id("part")
        self.final = folder / self.part_id
        self.temp = folder / f".{self.part_id}.tmp"
        self.digest = hashlib.sha256()
        self.size = 0
        self._out: IO[bytes] | None = open_write(_LOCAL, str(self.temp), sealing)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.room:
            raise InvalidInputError(
                f"part of upload {self.upload_id} is too large: more than {self.room:,} bytes "
                f"(announced {self.announced:,}, received {self.received_before:,}, "
                f"part limit {self.part_limit:,})"
            )
        self.digest.update(chunk)
        assert self._out is not None
        self._out.write(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def abort(self) -> None:
        self.close()
        self.temp.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)


def begin_part(
    db: Database,
    home: Path,
    upload_id: str,
    partner_id: int,
    limits: Limits,
    sealing: Sealing | None = None,
) -> PartSink:
    """Open a sink for the next part of a pending upload of this partner (sealed if `sealing`)."""
    with db.transaction() as session:
        upload = _open_for_parts(session, upload_id, partner_id)
        room = min(upload.bytes - upload.received_bytes, limits.max_part_bytes)
    if room <= 0:
        raise InvalidInputError(f"upload {upload_id} already holds all {upload.bytes:,} announced bytes")
    folder = staging_dir(home, upload_id)
    make_private_dirs(_LOCAL, str(folder))
    return PartSink(upload, folder, room, limits, sealing)


def finish_part(
    db: Database, sink: PartSink, partner_id: int, expected_sha256: str | None = None
) -> UploadPart:
    """Check and record a fully received part; on any refusal nothing of it is kept."""
    try:
        sink.close()
        if sink.size == 0:
            raise InvalidInputError(f"part of upload {sink.upload_id} is empty")
        sha = sink.digest.hexdigest()
        if expected_sha256 is not None and expected_sha256.strip().lower() != sha:
            raise InvalidInputError(
                f"part checksum mismatch in upload {sink.upload_id}: sent {expected_sha256}, got {sha}"
            )
        os.replace(sink.temp, sink.final)
        with db.transaction() as session:
            _open_for_parts(session, sink.upload_id, partner_id)
            grown = session.execute(
                update(DataUpload)
                .where(
                    DataUpload.id == sink.upload_id, DataUpload.received_bytes + sink.size <= DataUpload.bytes
                )
                .values(received_bytes=DataUpload.received_bytes + sink.size)
            )
            if getattr(grown, "rowcount", 0) != 1:
                raise InvalidInputError(f"part would take upload {sink.upload_id} past its announced size")
            session.execute(
                update(DataUpload)
                .where(DataUpload.id == sink.upload_id)
                .values(expires_at=utcnow() + UPLOAD_TTL)  # a slow upload stays open while parts arrive
            )
            part = UploadPart(id=sink.part_id, upload_id=sink.upload_id, bytes=sink.size, sha256=sha)
            session.add(part)
            session.flush()
        return part
    except BaseException:
        sink.abort()
        raise


def add_part(
    db: Database,
    home: Path,
    upload_id: str,
    partner_id: int,
    source: BinaryIO,
    limits: Limits,
    expected_sha256: str | None = None,
    sealing: Sealing | None = None,
) -> UploadPart:
    """Receive a whole part from a file object (the streaming endpoints use the sink directly)."""
    sink = begin_part(db, home, upload_id, partner_id, limits, sealing)
    try:
        while chunk := source.read(CHUNK):
            sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return finish_part(db, sink, partner_id, expected_sha256)


def complete(
    db: Database,
    home: Path,
    upload_id: str,
    partner_id: int,
    part_ids: Iterable[str],
    md5: str | None = None,
    sealing: Sealing | None = None,
) -> tuple[DataUpload, Contribution]:
    """Join the parts in the given order, verify, and queue the contribution (idempotent).

    Sealed parts are opened (every chunk authenticated) and the joined file sealed afresh, one
    chunk in memory at a time; a part that fails to open, or no longer has the SHA-256 it was
    received with (a plain part staged before encryption was on), refuses the completion.
    """
    order = list(part_ids)
    with db.transaction() as session:
        upload = get_upload(session, upload_id, partner_id)
        if upload.status == "completed":
            done = session.scalar(select(Contribution).where(Contribution.data_upload_id == upload_id))
            assert done is not None
            return upload, done
        upload = _open_for_parts(session, upload_id, partner_id)
        parts = {
            p.id: p for p in session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id))
        }
    if not order:
        raise InvalidInputError("part_ids: give the parts in order")
    unknown = [p for p in order if p not in parts]
    if unknown:
        raise InvalidInputError(f"part_ids: {unknown[0]} is not a part of upload {upload_id}")
    if len(set(order)) != len(order):
        raise InvalidInputError("part_ids: a part is listed twice")
    total = sum(parts[p].bytes for p in order)
    if total != upload.bytes:
        raise InvalidInputError(
            f"upload {upload_id} announced {upload.bytes:,} bytes but the listed parts hold {total:,}"
        )
    target = assembled_path(home, upload)
    make_private_dirs(_LOCAL, str(target.parent))
    temp = target.with_name(f".{target.name}.tmp")
    sha, md5_hash = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with open_write(_LOCAL, str(temp), sealing) as out:
            for part_id in order:
                staged = staging_dir(home, upload_id) / part_id
                part_sha = hashlib.sha256()
                with open_read(_LOCAL, str(staged), sealing) as part:
                    while chunk := part.read(CHUNK):
                        part_sha.update(chunk)
                        sha.update(chunk)
                        md5_hash.update(chunk)
                        out.write(chunk)
                if part_sha.hexdigest() != parts[part_id].sha256:
                    raise StateError(f"{staged}: the staged part is not the part received (altered on disk)")
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if md5 and md5.strip().lower() != md5_hash.hexdigest():
        temp.unlink()
        raise InvalidInputError(
            f"md5 mismatch for upload {upload_id}: sent {md5}, the joined parts give {md5_hash.hexdigest()}"
        )
    os.replace(temp, target)
    with db.transaction() as session:
        current = _open_for_parts(session, upload_id, partner_id)
        current.status = "completed"
        current.sha256 = sha.hexdigest()
        contribution = Contribution(
            id=new_id("contrib"),
            partner_id=partner_id,
            data_upload_id=upload_id,
            status="queued",
            attempts=0,
            documents_seen=0,
            documents_accepted=0,
            batches_done=0,
            error="",
        )
        session.add(contribution)
        session.flush()
    for part_id in parts:
        (staging_dir(home, upload_id) / part_id).unlink(missing_ok=True)
    return current, contribution


def parts_of(session: Session, upload_id: str, partner_id: int) -> tuple[DataUpload, list[UploadPart]]:
    """An upload and its received parts, oldest first: what a client needs to resume."""
    upload = get_upload(session, upload_id, partner_id)
    parts = session.scalars(
        select(UploadPart)
        .where(UploadPart.upload_id == upload_id)
        .order_by(UploadPart.created_at, UploadPart.id)
    )
    return upload, list(parts)


def sweep_expired(db: Database, home: Path) -> int:
    """Mark pending uploads past their expiry as expired and delete their staged parts."""
    with db.transaction() as session:
        stale = list(
            session.scalars(
                select(DataUpload.id).where(DataUpload.status == "pending", DataUpload.expires_at <= utcnow())
            )
        )
        if stale:
            session.execute(update(DataUpload).where(DataUpload.id.in_(stale)).values(status="expired"))
    for upload_id in stale:
        shutil.rmtree(staging_dir(home, upload_id), ignore_errors=True)
    return len(stale)


def cancel(db: Database, home: Path, upload_id: str, partner_id: int) -> DataUpload:
    with db.transaction() as session:
        upload = _open_for_parts(session, upload_id, partner_id)
        upload.status = "cancelled"
    shutil.rmtree(staging_dir(home, upload_id), ignore_errors=True)
    return upload
