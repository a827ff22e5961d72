"""Upload staging: expired uploads are swept with their parts; completion is all or nothing."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select, update

from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing
from tokenclub.atrest.sealed import SealError
from tokenclub.db.engine import Database
from tokenclub.db.portal_schema import Contribution, DataUpload
from tokenclub.db.types import utcnow
from tokenclub.errors import InvalidInputError, StateError
from tokenclub.portal import uploads
from tokenclub.portal.uploads import Limits

LIMITS = Limits(1000, 100)


def _partner(db: Database) -> int:
    with db.transaction() as session:
        pid = partners.apply(session, "p", threshold_words=1).id
        partners.decide(session, pid, PartnerStatus.APPROVED, 1)
    return pid


def test_expired_uploads_are_swept_with_their_parts(db: Database, tmp_path: Path) -> None:
    pid = _partner(db)
    with db.transaction() as session:
        upload = uploads.create_upload(
            session, pid, filename="a", purpose="p", size=10, mime_type="", limits=LIMITS
        )
    uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(b"12345"), LIMITS)
    assert len(list(uploads.staging_dir(tmp_path, upload.id).iterdir())) == 1
    assert uploads.sweep_expired(db, tmp_path) == 0
    with db.transaction() as session:
        session.execute(update(DataUpload).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert uploads.sweep_expired(db, tmp_path) == 1
    assert not uploads.staging_dir(tmp_path, upload.id).exists()
    with pytest.raises(StateError, match="is expired"):
        uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(b"6"), LIMITS)


def test_a_refused_completion_queues_nothing(db: Database, tmp_path: Path) -> None:
    pid = _partner(db)
    with db.transaction() as session:
        upload = uploads.create_upload(
            session, pid, filename="a", purpose="p", size=4, mime_type="", limits=LIMITS
        )
    part = uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(b"abcd"), LIMITS)
    with pytest.raises(InvalidInputError, match="md5 mismatch"):
        uploads.complete(db, tmp_path, upload.id, pid, [part.id], md5="f" * 32)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Contribution)) == 0
        assert session.get(DataUpload, upload.id).status == "pending"  # type: ignore[union-attr]
    _, contribution = uploads.complete(db, tmp_path, upload.id, pid, [part.id])
    again, same = uploads.complete(db, tmp_path, upload.id, pid, [part.id])
    assert same.id == contribution.id and again.status == "completed"
    assert (tmp_path / "staging" / upload.id / "file" / "a").read_bytes() == b"abcd"


def test_a_tampered_sealed_part_refuses_the_completion_and_queues_nothing(
    db: Database, tmp_path: Path
) -> None:
    sealing = Sealing(Keyring({"k": AESGCM.generate_key(bit_length=256)}, "k"), chunk_size=16)
    pid = _partner(db)
    text = "한국어 문장 열셋".encode()  # two sealed chunks of 16 and 7 bytes
    with db.transaction() as session:
        upload = uploads.create_upload(
            session, pid, filename="a", purpose="p", size=len(text) + 18, mime_type="", limits=LIMITS
        )
    first = uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(text), LIMITS, sealing=sealing)
    second = uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(b"x" * 18), LIMITS, sealing=sealing)
    staged = uploads.staging_dir(tmp_path, upload.id) / first.id
    sealed = staged.read_bytes()
    assert text not in sealed and first.sha256 == hashlib.sha256(text).hexdigest()
    staged.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(SealError, match=f"{staged}: chunk 1 fails authentication"):
        uploads.complete(db, tmp_path, upload.id, pid, [first.id, second.id], sealing=sealing)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Contribution)) == 0
        assert session.get(DataUpload, upload.id).status == "pending"  # type: ignore[union-attr]
    assert not (uploads.staging_dir(tmp_path, upload.id) / "file" / ".a.tmp").exists()


def test_a_plain_part_altered_on_disk_refuses_the_completion(db: Database, tmp_path: Path) -> None:
    pid = _partner(db)
    with db.transaction() as session:
        upload = uploads.create_upload(
            session, pid, filename="a", purpose="p", size=4, mime_type="", limits=LIMITS
        )
    part = uploads.add_part(db, tmp_path, upload.id, pid, io.BytesIO(b"abcd"), LIMITS)
    staged = uploads.staging_dir(tmp_path, upload.id) / part.id
    staged.write_bytes(b"abce")
    with pytest.raises(StateError, match=f"{staged}: the staged part is not the part received"):
        uploads.complete(db, tmp_path, upload.id, pid, [part.id])
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Contribution)) == 0
