"""Archives: members and their sources, Korean names, and hostile archives that must fail alone."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
import zlib

import pytest

from tests.extract.helpers import docx_bytes, split, tar_bytes, zip_bytes
from tokenclub.errors import ExtractionError
from tokenclub.extract.archive import (
    ArchiveLimits,
    Budget,
    ExpansionLimitError,
    Member,
    blob_from_bytes,
    check_zip_package,
    iter_tar,
    iter_zip,
)
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.reader import iter_extract_bytes


def zip_members(
    data: bytes, limits: ArchiveLimits | None = None
) -> list[tuple[str, bytes] | ExtractionFailure]:
    """(source, content) per member, read while the iterator still holds it open."""
    out: list[tuple[str, bytes] | ExtractionFailure] = []
    for item in iter_zip(blob_from_bytes(data), "up.zip", Budget(limits or ArchiveLimits(), "up.zip")):
        out.append(
            item if isinstance(item, ExtractionFailure) else (item.source, item.blob.read_all(10**9, "x"))
        )
    return out


def test_members_are_spooled_with_their_own_hash() -> None:
    content = "가나다".encode()
    items = list(
        iter_zip(
            blob_from_bytes(zip_bytes({"dir/a.txt": content})), "up.zip", Budget(ArchiveLimits(), "up.zip")
        )
    )
    (member,) = items
    assert isinstance(member, Member)
    assert (member.name, member.source, member.blob.size) == ("dir/a.txt", "up.zip!dir/a.txt", 9)
    assert member.blob.sha256 == hashlib.sha256(content).hexdigest()


def test_directories_and_macos_metadata_are_skipped() -> None:
    data = zip_bytes(
        {"d/": b"", "__MACOSX/d/._a.txt": b"\x00\x05\x16\x07", "d/.DS_Store": b"\x00\x00", "d/a.txt": b"A"}
    )
    assert zip_members(data) == [("up.zip!d/a.txt", b"A")]


def test_path_traversal_and_absolute_names_fail_alone() -> None:
    data = zip_bytes({"../../etc/cron.d/evil": b"x", "/abs.txt": b"y", "C:/win.txt": b"z", "ok.txt": b"fine"})
    assert zip_members(data) == [
        ExtractionFailure("up.zip!../../etc/cron.d/evil", "unsafe path (absolute or with '..'); skipped"),
        ExtractionFailure("up.zip!/abs.txt", "unsafe path (absolute or with '..'); skipped"),
        ExtractionFailure("up.zip!C:/win.txt", "unsafe path (absolute or with '..'); skipped"),
        ("up.zip!ok.txt", b"fine"),
    ]


def test_windows_cp949_member_names_are_recovered() -> None:
    korean = "보도자료.txt"
    raw = korean.encode("cp949")
    placeholder = b"X" * (len(raw) - 4) + b".txt"
    data = zip_bytes({placeholder.decode(): b"A"}).replace(placeholder, raw)
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert check.namelist() == [raw.decode("cp437")]  # what zipfile alone makes of it
    assert zip_members(data) == [("up.zip!보도자료.txt", b"A")]


def test_zip_bomb_member_fails_and_the_others_are_read() -> None:
    data = zip_bytes({"bomb.txt": b"\0" * (8 * 1024 * 1024), "real.txt": b"real"})
    assert zip_members(data) == [
        ExtractionFailure("up.zip!bomb.txt", "compression ratio above 200:1 (a decompression bomb?)"),
        ("up.zip!real.txt", b"real"),
    ]


def test_total_expansion_limit_stops_the_upload() -> None:
    data = zip_bytes({f"{n}.txt": b"x" * 400 for n in range(5)})
    limits = ArchiveLimits(max_total_bytes=1000)
    iterator = iter_zip(blob_from_bytes(data), "up.zip", Budget(limits, "up.zip"))
    assert [item.source for item in [next(iterator), next(iterator)] if isinstance(item, Member)] == [
        "up.zip!0.txt",
        "up.zip!1.txt",
    ]
    with pytest.raises(
        ExpansionLimitError, match=r"^up.zip: expands to more than 1000 bytes; reading stopped$"
    ):
        next(iterator)


def test_entry_flood_is_cut_at_the_limit() -> None:
    data = zip_bytes({f"{n}.txt": b"x" for n in range(6)})
    items = zip_members(data, ArchiveLimits(max_entries=4))
    assert items[4:] == [ExtractionFailure("up.zip", "more than 4 entries; the rest were not read")]
    assert len(items) == 5


def test_encrypted_member_fails_alone() -> None:
    data = bytearray(zip_bytes({"secret.txt": b"ciphertext", "open.txt": b"open"}))
    # Set the "encrypted" bit of secret.txt's flags, in its local header and its central
    # directory entry, as a password-protected zip declares it (zipfile cannot write one).
    data[6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    with (
        zipfile.ZipFile(io.BytesIO(bytes(data))) as check,
        pytest.raises(RuntimeError, match="password required"),
    ):
        check.read("secret.txt")
    assert zip_members(bytes(data)) == [
        ExtractionFailure("up.zip!secret.txt", "encrypted member (password-protected zip)"),
        ("up.zip!open.txt", b"open"),
    ]


def test_corrupt_member_fails_alone() -> None:
    data = bytearray(
        zip_bytes({"a.txt": b"first member " * 50, "b.txt": b"second"}, compression=zipfile.ZIP_STORED)
    )
    data[40:48] = b"CORRUPT!"  # inside a.txt's stored bytes: its CRC no longer matches
    items = zip_members(bytes(data))
    assert items == [
        ExtractionFailure("up.zip!a.txt", "corrupt compressed data (Bad CRC-32 for file 'a.txt')"),
        ("up.zip!b.txt", b"second"),
    ]


def test_truncated_zip_is_a_clear_failure() -> None:
    data = zip_bytes({"a.txt": b"x" * 1000})
    with pytest.raises(ExtractionError, match=r"^up.zip: corrupt zip archive \(File is not a zip file\)$"):
        zip_members(data[:-30])


def tar_members(data: bytes) -> list[tuple[str, bytes] | ExtractionFailure]:
    out: list[tuple[str, bytes] | ExtractionFailure] = []
    for item in iter_tar(io.BytesIO(data), "up.tar", Budget(ArchiveLimits(), "up.tar")):
        out.append(
            item if isinstance(item, ExtractionFailure) else (item.source, item.blob.read_all(10**9, "x"))
        )
    return out


def test_tar_links_and_unsafe_names_fail_alone() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in [("a.txt", b"A"), ("/etc/passwd", b"root"), ("b/../../up.txt", b"up")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        archive.addfile(link)
        info = tarfile.TarInfo("z.txt")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"Z"))
    assert tar_members(out.getvalue()) == [
        ("up.tar!a.txt", b"A"),
        ExtractionFailure("up.tar!/etc/passwd", "unsafe path (absolute or with '..'); skipped"),
        ExtractionFailure("up.tar!b/../../up.txt", "unsafe path (absolute or with '..'); skipped"),
        ExtractionFailure("up.tar!link.txt", "not a regular file (a link or device); skipped"),
        ("up.tar!z.txt", b"Z"),
    ]


def test_truncated_tar_stops_with_a_failure_after_the_whole_members() -> None:
    data = tar_bytes({"a.txt": b"A" * 600, "b.txt": b"B" * 5000})
    items = iter_tar(io.BytesIO(data[:2500]), "up.tar", Budget(ArchiveLimits(), "up.tar"))
    first = next(items)
    assert isinstance(first, Member) and first.source == "up.tar!a.txt"
    with pytest.raises(ExtractionError, match=r"^up.tar!b.txt: truncated tar archive"):
        next(items)


def test_check_zip_package_refuses_bombs_inside_documents() -> None:
    good = docx_bytes(["본문"])
    check_zip_package(blob_from_bytes(good), "ok.docx", ArchiveLimits())
    bomb = zip_bytes(
        {"word/document.xml": b"<w:document/>", "word/media/image1.png": b"\0" * (4 * 1024 * 1024)}
    )
    with pytest.raises(
        ExtractionError, match=r"^bomb.docx: part word/media/image1.png has a compression ratio above 200:1$"
    ):
        check_zip_package(blob_from_bytes(bomb), "bomb.docx", ArchiveLimits())
    with pytest.raises(
        ExtractionError, match=r"^big.docx: expands to \d+ bytes, more than the 1000 allowed$"
    ):
        check_zip_package(blob_from_bytes(good), "big.docx", ArchiveLimits(max_member_size=1000))


def test_gzip_bomb_is_stopped_by_the_ratio_while_streaming() -> None:
    bomb = gzip.compress(b"a" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    docs, failures = split(iter_extract_bytes(bomb, "bomb.txt.gz"))
    assert docs == []
    assert failures == [
        ExtractionFailure("bomb.txt.gz", "compression ratio above 200:1 (a decompression bomb?)")
    ]


def legacy_zip(names: list[bytes], extras: dict[bytes, bytes] | None = None) -> bytes:
    """A zip whose entry names are the given raw bytes with the UTF-8 flag unset, as Korean
    Windows' built-in zip writes them (zipfile itself would write UTF-8 and set the flag)."""
    buffer = io.BytesIO()
    placeholders = [f"{n:0{len(raw) - 4}d}.txt".encode() for n, raw in enumerate(names)]
    with zipfile.ZipFile(buffer, "w") as archive:
        for placeholder, raw in zip(placeholders, names, strict=True):
            info = zipfile.ZipInfo(placeholder.decode())
            info.extra = (extras or {}).get(raw, b"")
            archive.writestr(info, raw)
    data = buffer.getvalue()
    for placeholder, raw in zip(placeholders, names, strict=True):
        data = data.replace(placeholder, raw)
    return data


def test_cp949_names_from_korean_windows_are_decoded() -> None:
    names = ["기사_0.txt", "보도자료 2024.txt", "똠방각하.txt"]
    data = legacy_zip([name.encode("cp949") for name in names])
    with zipfile.ZipFile(io.BytesIO(data)) as check:
        assert check.namelist()[0] == "▒Γ╗τ_0.txt"
        assert not any(info.flag_bits & 0x800 for info in check.infolist())
    assert [item[0] for item in zip_members(data) if isinstance(item, tuple)] == [
        f"up.zip!{name}" for name in names
    ]


def test_genuine_cp437_names_stay_cp437() -> None:
    data = legacy_zip(["café.txt".encode("cp437"), "naïve.txt".encode("cp437")])
    assert [item[0] for item in zip_members(data) if isinstance(item, tuple)] == [
        "up.zip!café.txt",
        "up.zip!naïve.txt",
    ]


def test_info_zip_unicode_path_field_wins() -> None:
    raw = "기사.txt".encode("cp949")
    utf8 = "기사_유니코드.txt".encode()
    field = b"\x01" + zlib.crc32(raw).to_bytes(4, "little") + utf8
    extra = (0x7075).to_bytes(2, "little") + len(field).to_bytes(2, "little") + field
    data = legacy_zip([raw], {raw: extra})
    assert [item[0] for item in zip_members(data) if isinstance(item, tuple)] == ["up.zip!기사_유니코드.txt"]
