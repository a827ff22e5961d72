"""HWP 5.0: the text of Hancom's binary word-processor documents, read on top of olefile.

Written from Hancom's published "한글 문서 파일 형식 5.0" (HWP 5.0 file format): an OLE
compound file whose `FileHeader` stream says how the rest is stored, and whose
`BodyText/Section{n}` streams hold the body as a record stream. Every paragraph's characters
sit in one HWPTAG_PARA_TEXT record; paragraphs nested in controls (table cells, text boxes,
headers, notes) follow their parent paragraph as records of a deeper level in the same
stream, so reading PARA_TEXT records in stream order gives all the text in document order.

Distribution documents (배포용 문서) keep the real body AES-encrypted in `ViewText/Section{n}`
and leave only a placeholder ("open this in a newer Hangul") in `BodyText`; the key is derived
from the stream's leading HWPTAG_DISTRIBUTE_DOC_DATA record, which holds no secret of its own.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import unicodedata
import zlib
from collections.abc import Iterator

import olefile
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument

_SIGNATURE = b"HWP Document File"

# FileHeader properties (file recognition information, "파일 인식 정보").
_COMPRESSED = 1 << 0
_PASSWORD = 1 << 1
_DISTRIBUTION = 1 << 2
_DRM = 1 << 4
_CERTIFICATE_DRM = 1 << 10

_HWPTAG_BEGIN = 0x010
_TAG_DISTRIBUTE_DOC_DATA = _HWPTAG_BEGIN + 12
_TAG_PARA_TEXT = _HWPTAG_BEGIN + 51
_EXTENDED_SIZE = 0xFFF
_DISTRIBUTE_DOC_DATA_SIZE = 256

_WIDE_CONTROLS = frozenset((*range(1, 10), 11, 12, *range(14, 24)))
"""Inline and extended control characters: each occupies 8 WCHARs (code, 6 of data, code)."""

_CONTROL_TEXT = {9: "\t", 10: "\n", 13: "\n", 24: "-", 30: " ", 31: " "}
"""What the text-bearing controls stand for: tab, line break, paragraph break, hyphen,
bound (non-breaking) space and fixed-width space; every other control drops out."""

_SECTION = re.compile(r"Section(\d+)")

_SUMMARY_STREAMS = ("\x05HwpSummaryInformation", "\x05SummaryInformation")
_PID_CODEPAGE, _PID_TITLE = 1, 2
_VT_I2, _VT_LPSTR, _VT_LPWSTR = 0x02, 0x1E, 0x1F

MAX_SECTION_BYTES = 256 * 1024 * 1024
"""A section stream that inflates beyond this is refused: text records are small, a stream
this large is a decompression bomb."""


class _FormatError(Exception):
    """A malformed structure; becomes an ExtractionError naming the file."""


def _detail(exc: BaseException) -> str:
    """A library's message on one line, as ExtractionError reasons must be."""
    return " ".join(str(exc).split())


def read_hwp(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """Read an HWP 5.0 file into one document, or raise ExtractionError with the reason."""
    try:
        ole = _open(data)
        try:
            flags, version = _file_header(_stream(ole, ["FileHeader"]))
            distribution = bool(flags & _DISTRIBUTION)
            storage = "ViewText" if distribution else "BodyText"
            paragraphs: list[str] = []
            for path in _sections(ole, storage):
                raw = _stream(ole, path)
                if distribution:
                    raw = _decrypt_view_text(raw)
                if flags & _COMPRESSED:
                    raw = _inflate(raw)
                paragraphs.extend(_paragraphs(raw))
            title = _title(ole)
        finally:
            ole.close()
    except _FormatError as exc:
        raise ExtractionError(source, str(exc)) from exc
    metadata = {"hwp_version": version}
    if distribution:
        metadata["distribution_document"] = "true"
    text = unicodedata.normalize("NFC", "\n".join(paragraphs).strip())
    return [
        ExtractedDocument(
            source=source,
            format="hwp",
            text=text,
            title=title,
            byte_size=len(data),
            sha256=sha256,
            metadata=metadata,
        )
    ]


def _open(data: bytes) -> olefile.OleFileIO:
    if not olefile.isOleFile(data=data):
        raise _FormatError("not an HWP 5.0 file (no OLE compound file signature)")
    try:
        return olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:  # olefile raises many types on damaged containers
        raise _FormatError(f"corrupt OLE container ({_detail(exc)})") from exc


def _stream(ole: olefile.OleFileIO, path: list[str]) -> bytes:
    name = "/".join(path)
    if not ole.exists(name):
        raise _FormatError(f"missing stream {name}")
    try:
        return bytes(ole.openstream(path).read())
    except Exception as exc:  # olefile raises many types on damaged sector chains
        raise _FormatError(f"unreadable stream {name} ({_detail(exc)})") from exc


def _file_header(header: bytes) -> tuple[int, str]:
    """Check the FileHeader signature and refuse bodies no key can open; returns flags and version."""
    if len(header) < 40 or not header.startswith(_SIGNATURE):
        raise _FormatError("not an HWP 5.0 file (bad FileHeader signature)")
    version, flags = struct.unpack_from("<II", header, 32)
    if version >> 24 != 5:
        raise _FormatError(f"unsupported HWP version {version >> 24}")
    if flags & _PASSWORD:
        raise _FormatError("password-protected HWP document")
    if flags & (_DRM | _CERTIFICATE_DRM):
        raise _FormatError("DRM-protected HWP document")
    return flags, ".".join(str(version >> shift & 0xFF) for shift in (24, 16, 8, 0))


def _sections(ole: olefile.OleFileIO, storage: str) -> list[list[str]]:
    """The storage's Section{n} streams in numeric order (Section10 after Section9)."""
    numbered: list[tuple[int, list[str]]] = []
    for path in ole.listdir(streams=True, storages=False):
        if len(path) == 2 and path[0] == storage and (match := _SECTION.fullmatch(path[1])):
            numbered.append((int(match[1]), path))
    if not numbered:
        raise _FormatError(f"no {storage}/Section streams")
    return [path for _, path in sorted(numbered)]


def _inflate(raw: bytes) -> bytes:
    """Undo the raw deflate (no zlib header) that compressed documents apply to each stream."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_SECTION_BYTES)
    except zlib.error as exc:
        raise _FormatError(f"corrupt compressed section ({_detail(exc)})") from exc
    if inflater.unconsumed_tail:
        raise _FormatError(f"section inflates beyond {MAX_SECTION_BYTES >> 20} MiB")
    if not inflater.eof:
        raise _FormatError("truncated compressed section")
    return out


def _records(stream: bytes) -> Iterator[tuple[int, bytes]]:
    """Tag ids and payloads of a record stream ("데이터 레코드").

    Each record starts with a 32-bit header: tag id (bits 0-9), level (bits 10-19, unused
    here: stream order already is document order) and size (bits 20-31), where size 0xFFF
    means the real size follows as a 32-bit integer.
    """
    pos, end = 0, len(stream)
    while pos < end:
        if pos + 4 > end:
            raise _FormatError("truncated record header")
        (header,) = struct.unpack_from("<I", stream, pos)
        tag, size = header & 0x3FF, header >> 20
        pos += 4
        if size == _EXTENDED_SIZE:
            if pos + 4 > end:
                raise _FormatError("truncated record header")
            (size,) = struct.unpack_from("<I", stream, pos)
            pos += 4
        if pos + size > end:
            raise _FormatError(f"truncated record (tag {tag}, {size} bytes, {end - pos} left)")
        yield tag, stream[pos : pos + size]
        pos += size


def _paragraphs(stream: bytes) -> Iterator[str]:
    for tag, payload in _records(stream):
        if tag == _TAG_PARA_TEXT:
            yield _para_text(payload).rstrip("\n")


def _para_text(payload: bytes) -> str:
    """A PARA_TEXT record's WCHARs with the control characters ("제어 문자") resolved.

    Works on UTF-16 code units, not decoded characters, because the 6 data WCHARs of a wide
    control are arbitrary values that may look like surrogate pairs.
    """
    units = struct.unpack_from(f"<{len(payload) // 2}H", payload)
    kept: list[str] = []
    i, n = 0, len(units)
    while i < n:
        unit = units[i]
        if unit >= 32:
            kept.append(chr(unit))
            i += 1
            continue
        kept.append(_CONTROL_TEXT.get(unit, ""))
        i += 8 if unit in _WIDE_CONTROLS else 1
    # Rejoin surrogate pairs split into separate chr() calls; lone halves become U+FFFD.
    return "".join(kept).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _decrypt_view_text(stream: bytes) -> bytes:
    """Decrypt a distribution document's ViewText section (AES-128-ECB).

    The spec defines the section's leading 256-byte HWPTAG_DISTRIBUTE_DOC_DATA record but not
    how the key comes out of it; that was described publicly on the hwp-foss mailing list
    (2014) and is checked here against a real distribution document. The record's first
    4 bytes seed Microsoft Visual C's rand(); its other bytes are XOR-masked with a 256-byte
    array filled by runs of a random byte (rand() & 0xFF) repeated (rand() & 0xF) + 1 times.
    In the unmasked record the AES key is the 16 bytes at offset 4 + (first byte & 0xF);
    everything after the record is ciphertext.
    """
    header = struct.pack("<I", _TAG_DISTRIBUTE_DOC_DATA | _DISTRIBUTE_DOC_DATA_SIZE << 20)
    end = len(header) + _DISTRIBUTE_DOC_DATA_SIZE
    if not stream.startswith(header) or len(stream) < end:
        raise _FormatError("ViewText section lacks its distribution document record")
    seed_data, ciphertext = stream[len(header) : end], stream[end:]
    mask = _msvc_rand_mask(int.from_bytes(seed_data[:4], "little"))
    unmasked = seed_data[:4] + bytes(a ^ b for a, b in zip(seed_data[4:], mask[4:], strict=True))
    offset = 4 + (seed_data[0] & 0x0F)
    key = unmasked[offset : offset + 16]
    if len(ciphertext) % 16:
        raise _FormatError("encrypted ViewText section is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _msvc_rand_mask(seed: int) -> bytes:
    """The 256-byte XOR mask of a distribution document record, from rand() seeded by srand(seed)."""
    state = seed
    mask = bytearray()

    def rand() -> int:
        nonlocal state
        state = (state * 214013 + 2531011) & 0xFFFFFFFF
        return (state >> 16) & 0x7FFF

    while len(mask) < _DISTRIBUTE_DOC_DATA_SIZE:
        value = rand() & 0xFF
        mask.extend(bytes((value,)) * ((rand() & 0x0F) + 1))
    return bytes(mask[:_DISTRIBUTE_DOC_DATA_SIZE])


def _title(ole: olefile.OleFileIO) -> str | None:
    """The title from Hancom's HwpSummaryInformation, else from the OLE SummaryInformation.

    Both are OLE property set streams with the standard property ids. They are parsed here
    rather than with olefile's getproperties, which loops for as long as a damaged vector
    count says (minutes on a corrupt upload) and misreads UTF-16 strings. The title is
    optional: a damaged property stream costs the title, never the text.
    """
    for name in _SUMMARY_STREAMS:
        if not ole.exists(name):
            continue
        try:
            title = _property_set_title(_stream(ole, [name]))
        except _FormatError:
            continue
        if title:
            return unicodedata.normalize("NFC", title)
    return None


def _property_set_title(stream: bytes) -> str | None:
    """PIDSI_TITLE of a property set stream's first property set ([MS-OLEPS] 2.20-2.21).

    The stream header (28 bytes) is followed by the first set's FMTID and offset; the set
    holds its size, its property count and (id, offset) pairs, each offset pointing at a
    typed value. Every length comes from the file, so every read is bounds-checked.
    """
    try:
        (base,) = struct.unpack_from("<I", stream, 44)
        (count,) = struct.unpack_from("<I", stream, base + 4)
        offsets: dict[int, int] = {}
        for index in range(min(count, (len(stream) - base) // 8)):
            pid, offset = struct.unpack_from("<II", stream, base + 8 + 8 * index)
            offsets.setdefault(pid, base + offset)
        if _PID_TITLE not in offsets:
            return None
        vtype, length = struct.unpack_from("<HxxI", stream, offsets[_PID_TITLE])
        start = offsets[_PID_TITLE] + 8
        if vtype == _VT_LPWSTR:
            text = stream[start : start + 2 * length].decode("utf-16-le", "replace")
        elif vtype == _VT_LPSTR:
            codepage = 949
            if _PID_CODEPAGE in offsets:
                ctype, codepage = struct.unpack_from("<HxxH", stream, offsets[_PID_CODEPAGE])
                codepage = codepage if ctype == _VT_I2 else 949
            text = stream[start : start + length].decode(_codec(codepage), "replace")
        else:
            return None
    except struct.error:
        return None
    return text.split("\x00", 1)[0].strip() or None


def _codec(codepage: int) -> str:
    """Python's codec for a Windows code page; CP949 (Korean Windows) when unknown."""
    name = "utf-16-le" if codepage == 1200 else f"cp{codepage}"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "cp949"
