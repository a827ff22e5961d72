"""The raw store: content addressing, one copy per content, atomic writes, idempotent deletes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tokenclub.atrest.keys import Keyring
from tokenclub.atrest.objects import Sealing
from tokenclub.errors import ExtractionError, InvalidInputError, NotFoundError, StateError
from tokenclub.extract.rawstore import RawStore


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_file_stores_under_the_hash(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one copy chunk
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    store = RawStore(tmp_path / "raw")
    digest = store.put_file(upload)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.path(digest) == tmp_path / "raw" / digest[:2] / digest[2:4] / digest
    assert store.exists(digest)
    with store.open(digest) as stored:
        assert stored.read() == data
    assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o600  # private to the service
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "raw").rglob("*") if p.is_dir()} == {0o700}
    assert stored_files(tmp_path / "raw") == [store.path(digest)]  # no temporary file left behind


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_bytes("같은 내용".encode())
    second.write_bytes("같은 내용".encode())
    store = RawStore(tmp_path / "raw")
    assert store.put_file(first) == store.put_file(second)
    assert len(stored_files(tmp_path / "raw")) == 1


def test_delete_is_idempotent(tmp_path: Path) -> None:
    upload = tmp_path / "a.txt"
    upload.write_bytes(b"kept until the receipt is written")
    store = RawStore(tmp_path / "raw")
    digest = store.put_file(upload)
    store.delete(digest)
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(NotFoundError, match=f"no raw file {digest}"):
        store.open(digest)


def test_a_failed_copy_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upload = tmp_path / "a.txt"
    upload.write_bytes(b"content")
    store = RawStore(tmp_path / "raw")

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        store.put_file(upload)
    assert stored_files(tmp_path / "raw") == []


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "A" * 64, "../" + "a" * 61])
def test_only_sha256_digests_name_files(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="not a SHA-256 hex digest"):
        RawStore(tmp_path).path(bad)


def test_a_store_on_another_filesystem(tmp_path: Path) -> None:
    """memory:// stands in for an object store: no local path, a spooled local copy for readers."""
    data = os.urandom(2 * 1024 * 1024 + 5)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    store = RawStore(f"memory://tc-raw-{os.getpid()}-{id(data)}/raw")
    digest = store.put_file(upload)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put_file(upload) == digest
    assert store.exists(digest)
    assert store.fs.find(store.root) == [store.location(digest)]  # nothing left under incoming/
    with store.open(digest) as stored:
        assert stored.read() == data
    with store.local_copy(digest) as copy:
        assert copy.read_bytes() == data
    assert not copy.exists()
    with pytest.raises(StateError, match="is not on the local disk"):
        store.path(digest)
    store.delete(digest)
    store.delete(digest)
    assert not store.exists(digest)


def test_a_sealed_store_keeps_only_ciphertext(tmp_path: Path) -> None:
    data = ("신문사 원본 기사 " * 200_000).encode()  # several chunks
    upload = tmp_path / "upload.txt"
    upload.write_bytes(data)
    sealing = Sealing(Keyring({}, "").with_new_key())
    store = RawStore(tmp_path / "raw", sealing)
    digest = store.put_file(upload)
    assert digest == hashlib.sha256(data).hexdigest()
    stored = store.path(digest).read_bytes()
    assert stored.startswith(b"TCSEALv1") and "원본".encode() not in stored
    with store.reader(digest) as (stream, size):
        assert size == len(data)
        stream.seek(len(data) - 10)
        assert stream.read() == data[-10:]
    with store.local_copy(digest) as copy:
        assert copy.read_bytes() == data and copy != store.path(digest)
    with pytest.raises(StateError, match="encrypted at rest, and no master key"):
        RawStore(tmp_path / "raw").open(digest)


def test_a_folder_file_swapped_for_a_link_is_not_stored(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0")
    link = tmp_path / "up.txt"
    link.symlink_to(secret)
    store = RawStore(tmp_path / "raw")
    with pytest.raises(ExtractionError, match="symbolic link"):
        store.put_file(link, regular_only=True)
    assert stored_files(tmp_path / "raw") == []
