"""Zip and tar archives and compressed files, opened with limits that stop decompression bombs.

An upload is untrusted: a 40 KB zip can expand to petabytes, an entry can be named
`../../etc/passwd`, and a million empty entries can stall a worker. Every byte that comes
out of a decompressor is counted against the limits of the upload file it came from, and
each member is copied once into a spool file (memory, then disk past SPOOL_IN_MEMORY)
while it is hashed, so the documents read from it can carry its size and SHA-256.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.sniff import ZIP_ERRORS, Format
from tokenclub.extract.text import to_nfc

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MiB = 1024 * 1024
GiB = 1024 * MiB
RATIO_FLOOR = 1 * MiB
"""Compression ratios are judged only past this much output: a small file of spaces may
legitimately compress 300:1, a bomb cannot do harm below it."""
SPOOL_IN_MEMORY = 32 * MiB
_CHUNK = 1 * MiB
_ZIP_UTF8_FLAG = 0x800
_ZIP_ENCRYPTED_FLAG = 0x1
_DRIVE = re.compile(r"^[A-Za-z]:")
_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]")
_UNICODE_PATH_TAG = 0x7075

_DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (*ZIP_ERRORS, lzma.LZMAError, tarfile.TarError)
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError)


class Readable(Protocol):
    """Anything with `read(size)`: a file, a zip member, a decompressor."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Bounds on what one upload file may expand to; exceeding one is a failure, never a crash.

    `max_total_bytes` and `max_ratio` stop bombs, `max_entries` stops entry floods,
    `max_depth` bounds archives (and compressed files) nested in one another, and
    `max_member_size` is the largest single file read whole into memory (a PDF, a DOCX, a
    nested zip, a text file); record dumps stream and are bounded by the total only.
    """

    max_total_bytes: int = 16 * GiB
    max_ratio: int = 200
    max_entries: int = 100_000
    max_depth: int = 5
    max_member_size: int = 512 * MiB


class ExpansionLimitError(ExtractionError):
    """The upload file expanded past `max_total_bytes`: everything after this point is dropped."""


class Budget:
    """The running count of expanded bytes for one upload file, shared by nested archives."""

    def __init__(self, limits: ArchiveLimits, source: str) -> None:
        self.limits = limits
        self._source = source
        self._used = 0

    def consume(self, size: int) -> None:
        self._used += size
        if self._used > self.limits.max_total_bytes:
            raise ExpansionLimitError(
                self._source, f"expands to more than {self.limits.max_total_bytes} bytes; reading stopped"
            )


@dataclass(frozen=True, slots=True)
class Blob:
    """A seekable file with the size and SHA-256 of the file it stands for."""

    file: IO[bytes]
    size: int
    sha256: str

    def read_all(self, limit: int, source: str) -> bytes:
        """The whole content, refused past `limit` bytes so that no file can exhaust memory."""
        if self.size > limit:
            raise ExtractionError(source, f"{self.size} bytes, more than the {limit} read whole")
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def blob_from_bytes(data: bytes) -> Blob:
    return Blob(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())


def spool(stream: Readable) -> Blob:
    """Copy a stream into a spool file while hashing it."""
    digest = hashlib.sha256()
    size = 0
    target = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed by Blob.close)
    try:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            target.write(chunk)
            size += len(chunk)
        target.seek(0)
    except BaseException:
        target.close()
        raise
    return Blob(target, size, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class Member:
    """A regular file inside an archive, valid until the archive iterator moves on."""

    name: str
    source: str
    blob: Blob


class _Guard(io.RawIOBase):
    """Counts a decompressor's output against the budget and the compression ratio."""

    def __init__(self, inner: Readable, source: str, budget: Budget, compressed_size: int) -> None:
        super().__init__()
        self._inner = inner
        self._source = source
        self._budget = budget
        self._allowed = budget.limits.max_ratio * max(compressed_size, 1)
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            chunk = self._inner.read(len(view))
        except _DECOMPRESSION_ERRORS as err:
            raise ExtractionError(self._source, f"corrupt compressed data ({err})") from None
        view[: len(chunk)] = chunk
        self._count += len(chunk)
        self._budget.consume(len(chunk))
        if self._count > RATIO_FLOOR and self._count > self._allowed:
            ratio = self._budget.limits.max_ratio
            raise ExtractionError(self._source, f"compression ratio above {ratio}:1 (a decompression bomb?)")
        return len(chunk)


def _guarded(inner: Readable, source: str, budget: Budget, compressed_size: int) -> IO[bytes]:
    """A buffered, counted view of a decompressing stream."""
    return io.BufferedReader(_Guard(inner, source, budget, compressed_size), buffer_size=_CHUNK)


def _decompressor(blob: Blob, compression: Format) -> Readable:
    blob.file.seek(0)
    if compression is Format.GZIP:
        return gzip.GzipFile(fileobj=blob.file, mode="rb")
    if compression is Format.BZIP2:
        return bz2.BZ2File(blob.file)
    return lzma.LZMAFile(blob.file)


def decompress(blob: Blob, compression: Format, source: str, budget: Budget) -> IO[bytes]:
    """The content of a gzip, bzip2 or xz file, as a guarded stream."""
    return _guarded(_decompressor(blob, compression), source, budget, blob.size)


def peek_decompressed(blob: Blob, compression: Format, size: int, source: str) -> bytes:
    """The first bytes inside a compressed file, to tell what it holds."""
    try:
        return _decompressor(blob, compression).read(size)
    except _DECOMPRESSION_ERRORS as err:
        raise ExtractionError(source, f"corrupt compressed data ({err})") from None
    finally:
        blob.file.seek(0)


def _unsafe(name: str) -> bool:
    path = name.replace("\\", "/")
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in PurePosixPath(path).parts


def _junk(name: str) -> bool:
    """Files macOS adds to every archive it makes: metadata, not content."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.parts[:1] == ("__MACOSX",) or path.name == ".DS_Store" or path.name.startswith("._")


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name, in the encoding its writer used.

    With the UTF-8 flag (bit 11) set the name is UTF-8 and zipfile has it right. Without it
    zipfile decodes CP437, which is right only for old DOS tools: an Info-ZIP Unicode Path
    field (7-Zip, Info-ZIP) then gives the UTF-8 name; else the raw bytes are tried as UTF-8
    (macOS and Linux tools that do not set the flag) and then as CP949, which Korean Windows
    writes without saying so (`▒Γ╗τ.txt` is `기사.txt`). CP949 is taken only when it yields
    Korean, so a genuine CP437 name (`café`) stays as it was.
    """
    name = info.filename
    if not info.flag_bits & _ZIP_UTF8_FLAG:
        raw = name.encode("cp437")
        name = _unicode_path(info, raw) or _legacy_name(raw, name)
    return to_nfc(name)


def _unicode_path(info: zipfile.ZipInfo, raw: bytes) -> str | None:
    """The UTF-8 name in an Info-ZIP Unicode Path extra field (0x7075), if it matches the header name."""
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        body, extra = extra[4 : 4 + size], extra[4 + size :]
        if tag == _UNICODE_PATH_TAG and len(body) > 5 and body[0] == 1:
            (crc,) = struct.unpack("<I", body[1:5])
            if crc == zlib.crc32(raw):
                try:
                    return body[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
    return None


def _legacy_name(raw: bytes, cp437: str) -> str:
    if raw.isascii():
        return cp437
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        korean = raw.decode("cp949")
    except UnicodeDecodeError:
        return cp437
    return korean if _plausibly_korean(korean) else cp437


def _plausibly_korean(name: str) -> bool:
    """Whether a CP949 reading is Korean rather than CP437 bytes that happen to pair up.

    Real names use the 2,350 common syllables of KS X 1001 (EUC-KR) almost exclusively;
    CP437 accents read as CP949 land among the rare extended ones (`naïve` → `na땦e`).
    """
    syllables = _HANGUL.findall(name)
    common = sum(1 for s in syllables if _common_syllable(s))
    return bool(syllables) and 2 * common >= len(syllables)


def _common_syllable(syllable: str) -> bool:
    """In KS X 1001 itself: two bytes of EUC-KR (Python spells the others as 8-byte jamo sequences)."""
    try:
        return len(syllable.encode("euc_kr")) == 2
    except UnicodeEncodeError:
        return False


def _tar_name(name: str) -> str:
    """The member's name; tar names carry no encoding, so non-UTF-8 bytes are tried as CP949."""
    raw = name.encode("utf-8", "surrogateescape")
    try:
        return to_nfc(raw.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    try:
        return to_nfc(raw.decode("cp949"))
    except UnicodeDecodeError:
        return to_nfc(raw.decode("utf-8", "replace"))


def _bomb(info: zipfile.ZipInfo, limits: ArchiveLimits) -> bool:
    """Whether a zip entry declares more expansion than the ratio limit allows."""
    return info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1)


def _too_many(source: str, limits: ArchiveLimits) -> ExtractionFailure:
    return ExtractionFailure(source, f"more than {limits.max_entries} entries; the rest were not read")


def iter_zip(blob: Blob, source: str, budget: Budget) -> Iterator[Member | ExtractionFailure]:
    """The regular files of a zip archive, each spooled; unsafe or unreadable ones as failures."""
    limits = budget.limits
    try:
        archive = zipfile.ZipFile(blob.file)
        entries = archive.infolist()
    except ZIP_ERRORS as err:
        raise ExtractionError(source, f"corrupt zip archive ({err})") from None
    with archive:
        for count, info in enumerate(entries, start=1):
            if count > limits.max_entries:
                yield _too_many(source, limits)
                return
            name = _zip_name(info)
            where = f"{source}!{name}"
            if info.is_dir() or _junk(name):
                continue
            if _unsafe(name):
                yield ExtractionFailure(where, "unsafe path (absolute or with '..'); skipped")
                continue
            if info.flag_bits & _ZIP_ENCRYPTED_FLAG:
                yield ExtractionFailure(where, "encrypted member (password-protected zip)")
                continue
            if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(
                info.compress_size, 1
            ):
                yield ExtractionFailure(
                    where, f"compression ratio above {limits.max_ratio}:1 (a decompression bomb?)"
                )
                continue
            try:
                with archive.open(info) as raw:
                    member = spool(_guarded(raw, where, budget, info.compress_size))
            except ExpansionLimitError:
                raise
            except ExtractionError as err:
                yield ExtractionFailure(err.source, err.reason)
                continue
            except ZIP_ERRORS as err:
                yield ExtractionFailure(where, f"unreadable member ({err})")
                continue
            try:
                yield Member(name, where, member)
            finally:
                member.close()


def _open_tar(stream: IO[bytes], source: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
    except _TAR_ERRORS as err:
        raise ExtractionError(source, f"corrupt tar archive ({err})") from None


def iter_tar(stream: IO[bytes], source: str, budget: Budget) -> Iterator[Member | ExtractionFailure]:
    """The regular files of a tar stream, in order; links and devices as failures.

    The tar is read front to back once (stream mode), so a tar.gz is decompressed once
    however many members it has; a damaged header ends it with an ExtractionError.
    """
    limits = budget.limits
    with _open_tar(stream, source) as archive:
        count = 0
        while True:
            try:
                info = archive.next()
            except _TAR_ERRORS as err:
                raise ExtractionError(source, f"corrupt tar archive after {count} entries ({err})") from None
            if info is None:
                return
            count += 1
            if count > limits.max_entries:
                yield _too_many(source, limits)
                return
            name = _tar_name(info.name)
            where = f"{source}!{name}"
            if info.isdir() or _junk(name):
                continue
            if _unsafe(name):
                yield ExtractionFailure(where, "unsafe path (absolute or with '..'); skipped")
                continue
            content = archive.extractfile(info) if info.isfile() else None
            if content is None:
                yield ExtractionFailure(where, "not a regular file (a link or device); skipped")
                continue
            try:
                member = spool(content)
            except _TAR_ERRORS as err:
                raise ExtractionError(where, f"truncated tar archive ({err})") from None
            try:
                yield Member(name, where, member)
            finally:
                member.close()


def check_zip_package(blob: Blob, source: str, limits: ArchiveLimits) -> None:
    """Refuse a zip-based document (DOCX, EPUB, HWPX) whose parts would expand past the limits.

    Their readers load every part into memory, so the declared sizes are checked first;
    zipfile never returns more than a part's declared size, which makes them binding.
    """
    blob.file.seek(0)
    try:
        with zipfile.ZipFile(blob.file) as archive:
            entries = archive.infolist()
    except ZIP_ERRORS as err:
        raise ExtractionError(source, f"corrupt zip package ({err})") from None
    finally:
        blob.file.seek(0)
    if len(entries) > limits.max_entries:
        raise ExtractionError(source, f"more than {limits.max_entries} parts")
    total = 0
    for info in entries:
        if _bomb(info, limits):
            raise ExtractionError(
                source, f"part {info.filename} has a compression ratio above {limits.max_ratio}:1"
            )
        total += info.file_size
    if total > limits.max_member_size:
        raise ExtractionError(
            source, f"expands to {total} bytes, more than the {limits.max_member_size} allowed"
        )
