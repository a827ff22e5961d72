"""Upload staging: expired uploads are swept with their parts; completion is all or nothing."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
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
