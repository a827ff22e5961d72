"""HWP 5.0 reader: real samples, hand-built record streams, damaged files, and two oracles."""

from __future__ import annotations

import hashlib
import io
import random
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import olefile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CORPORA
from tokenclub.errors import ExtractionError
from tokenclub.extract.hwp import read_hwp

SAMPLES = CORPORA / "samples" / "hwp"
DISTRIBUTION = "distribution-protected-bid-notice.hwp"
PRESS_RELEASE = "msit-press-release-nuri-rocket.hwp"
REPORT = "report-template-basics.hwp"

PARA_TEXT = 67


class Expected(NamedTuple):
    hangul: int
    title: str | None
    phrases: tuple[str, ...]


EXPECTED = {
    DISTRIBUTION: Expected(
        hangul=1439,
        title="무궁화동산등",
        phrases=(
            "2025년 강남세움센터 시설관리원 용역업체 선정 입찰공고",
            "③계약기간 : 2025년 1월 1일 ~ 2025년 12월 31일",
            # a table cell
            "② 재해 발생 시 재발방지 대책의 수립 및 그 이행",
        ),
    ),
    PRESS_RELEASE: Expected(
        hangul=992,
        title="2",
        phrases=(
            "새로운 이름으로 “누리”가 선정되었다고 밝혔다.",
            # table cells: the header box, the title box, the comparison table
            "거대공공연구정책과",
            "국민이 정한 그 이름은 ｢누리｣",
            "1.5톤급 실용위성을 지구저궤도(600~800km)에 투입",
            # a text box
            "과학기술정보통신부 용찬재 사무관(☎ 02-2110-2428)에게 연락주시기 바랍니다.",
        ),
    ),
    REPORT: Expected(
        hangul=1310,
        title=None,
        phrases=(
            # text boxes (drawing objects)
            "이 문서는 나눔글꼴로 작성되었습니다.",
            "리포트의 제목",
            # table cells
            "담당교수",
            "이 단계는 ‘본문1' 또는 '본문1 에코' 목록으로 작성합니다.",
        ),
    ),
}


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {path} is absent")
    return path


def read(data: bytes, source: str = "upload/doc.hwp") -> str:
    [document] = read_hwp(data, source, hashlib.sha256(data).hexdigest())
    return document.text


def hangul(text: str) -> int:
    return sum("가" <= char <= "힣" for char in text)


def record(tag: int, payload: bytes, level: int = 0) -> bytes:
    size = len(payload)
    if size < 0xFFF:
        return struct.pack("<I", tag | level << 10 | size << 20) + payload
    return struct.pack("<II", tag | level << 10 | 0xFFF << 20, size) + payload


def wchars(*parts: str | list[int]) -> bytes:
    """UTF-16LE text, with lists standing for raw code units (control characters)."""
    units: list[int] = []
    for part in parts:
        if isinstance(part, str):
            encoded = part.encode("utf-16-le")
            units.extend(struct.unpack(f"<{len(encoded) // 2}H", encoded))
        else:
            units.extend(part)
    return struct.pack(f"<{len(units)}H", *units)


def replace_stream(data: bytes, path: str, content: bytes) -> bytes:
    """The file with one stream overwritten; olefile can only write a stream at its own size."""
    buffer = io.BytesIO(data)
    ole = olefile.OleFileIO(buffer, write_mode=True)
    size = ole.get_size(path)
    assert len(content) <= size, "replacement content larger than the stream"
    ole.write_stream(path, content + b"\0" * (size - len(content)))
    ole.close()
    return buffer.getvalue()


def with_body(records: bytes) -> bytes:
    """The press release with its only section replaced by a raw-deflated record stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(records) + compressor.flush()
    return replace_stream(sample(PRESS_RELEASE).read_bytes(), "BodyText/Section0", deflated)


def with_flags(data: bytes, set_bits: int) -> bytes:
    ole = olefile.OleFileIO(io.BytesIO(data))
    header = bytearray(ole.openstream("FileHeader").read())
    ole.close()
    (flags,) = struct.unpack_from("<I", header, 36)
    struct.pack_into("<I", header, 36, flags | set_bits)
    return replace_stream(data, "FileHeader", bytes(header))


def property_set(*properties: tuple[int, bytes]) -> bytes:
    """An OLE property set stream ([MS-OLEPS]) with one set holding the given typed values."""
    header = struct.pack("<HHI16sI16sI", 0xFFFE, 0, 0, bytes(16), 1, bytes(16), 48)
    entries, values = b"", b""
    offset = 8 + 8 * len(properties)
    for pid, value in properties:
        entries += struct.pack("<II", pid, offset + len(values))
        values += value + bytes(-len(value) % 4)
    return header + struct.pack("<II", offset + len(values), len(properties)) + entries + values


def typed(vtype: int, count: int, payload: bytes) -> bytes:
    return struct.pack("<HxxI", vtype, count) + payload


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_extracts(name: str) -> None:
    data = sample(name).read_bytes()
    [document] = read_hwp(data, f"upload/{name}", "f" * 64)
    expected = EXPECTED[name]
    assert document.source == f"upload/{name}"
    assert document.format == "hwp"
    assert document.byte_size == len(data)
    assert document.sha256 == "f" * 64
    assert document.title == expected.title
    assert hangul(document.text) == expected.hangul
    for phrase in expected.phrases:
        assert phrase in document.text
    assert not any(ord(char) < 32 and char not in "\t\n" for char in document.text)


def test_distribution_document_reads_the_encrypted_view_text() -> None:
    [document] = read_hwp(sample(DISTRIBUTION).read_bytes(), "bid.hwp", "0" * 64)
    assert document.metadata == {"hwp_version": "5.1.1.0", "distribution_document": "true"}
    # BodyText of a distribution document holds only this placeholder.
    assert "상위 버전의 배포용 문서입니다" not in document.text
    assert document.text.startswith("강남세움복지관 공고 제 2024-08호")


def test_control_characters_follow_the_spec() -> None:
    tab = [9, 0, 0, 0, 0, 0, 0, 9]
    # An extended control (a table) whose data units look like a surrogate pair.
    table = [11, 0x6C62, 0x7420, 0xD800, 0xDC00, 0, 0, 11]
    field_start = [3, 0x6B6C, 0x6320, 0, 0, 0, 0, 3]
    field_end = [4, 0, 0, 0, 0, 0, 0, 4]
    first = wchars(
        "가", tab, "나", table, "다", [10], "라", [31], "마", [24], [0], "\U00020000", [30], "바", [13]
    )
    field = wchars("이름: ", field_start, "홍길동", field_end, [13])
    decomposed = wchars("\u1112\u1161\u11ab글", [13])  # 한글 in conjoining jamo
    long_text = wchars("글" * 5000, [13])  # needs the extended size field
    records = (
        record(66, b"\0" * 22)  # PARA_HEADER, ignored
        + record(PARA_TEXT, first)
        + record(PARA_TEXT, field, level=2)
        + record(PARA_TEXT, decomposed)
        + record(PARA_TEXT, long_text)
    )
    text = read(with_body(records))
    assert text.split("\n") == ["가\t나다", "라 마-\U00020000 바", "이름: 홍길동", "한글", "글" * 5000]


def test_lone_surrogate_becomes_replacement_character() -> None:
    assert read(with_body(record(PARA_TEXT, wchars("가", [0xD800], "나", [13])))) == "가\ufffd나"


def test_title_from_hwp_summary_information() -> None:
    title = typed(0x1F, 9, "누리호 보도자료\0".encode("utf-16-le"))
    stream = property_set((1, typed(0x02, 1200, b"")), (2, title))
    data = replace_stream(sample(PRESS_RELEASE).read_bytes(), "\x05HwpSummaryInformation", stream)
    [document] = read_hwp(data, "t.hwp", "0" * 64)
    assert document.title == "누리호 보도자료"


def test_title_falls_back_to_summary_information_in_its_code_page() -> None:
    # The report template's HwpSummaryInformation has an empty title.
    title = typed(0x1E, 12, "보고서 양식\0".encode("cp949"))
    stream = property_set((1, typed(0x02, 949, b"")), (2, title))
    data = replace_stream(sample(REPORT).read_bytes(), "\x05SummaryInformation", stream)
    [document] = read_hwp(data, "t.hwp", "0" * 64)
    assert document.title == "보고서 양식"


@pytest.mark.parametrize(
    "stream",
    [
        # A vector of 2^32 - 1 strings: olefile's own parser would loop for minutes on it.
        property_set((2, typed(0x101F, 0xFFFFFFFF, b"\0" * 8))),
        property_set((2, typed(0x03, 7, b""))),  # not a string
        struct.pack(
            "<HHI16sI16sI", 0xFFFE, 0, 0, bytes(16), 1, bytes(16), 0xFFFFFF00
        ),  # set offset past the end
        property_set((2, b"")) + b"\xff" * 4,  # value offset points at the padding
        b"",
    ],
)
def test_damaged_summary_costs_only_the_title(stream: bytes) -> None:
    original = sample(PRESS_RELEASE).read_bytes()
    data = replace_stream(original, "\x05HwpSummaryInformation", stream)
    [document] = read_hwp(data, "t.hwp", "0" * 64)
    assert document.title is None
    assert document.text == read(original)


def test_password_protected_document_is_refused() -> None:
    data = with_flags(sample(PRESS_RELEASE).read_bytes(), 1 << 1)
    with pytest.raises(ExtractionError) as error:
        read(data, "secret.hwp")
    assert error.value.source == "secret.hwp"
    assert error.value.reason == "password-protected HWP document"


def test_drm_document_is_refused() -> None:
    data = with_flags(sample(PRESS_RELEASE).read_bytes(), 1 << 4)
    with pytest.raises(ExtractionError, match="DRM-protected HWP document"):
        read(data)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not an HWP 5.0 file (no OLE compound file signature)"),
        (b"HWP Document File" + b"\0" * 1000, "not an HWP 5.0 file (no OLE compound file signature)"),
        (random.Random(7).randbytes(4096), "not an HWP 5.0 file (no OLE compound file signature)"),
    ],
)
def test_non_ole_input_is_refused(content: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError) as error:
        read(content)
    assert error.value.reason == reason


def test_truncated_file_is_refused() -> None:
    data = sample(PRESS_RELEASE).read_bytes()
    for cut in (512, 4096, len(data) // 2):
        with pytest.raises(ExtractionError):
            read(data[:cut])


def test_bad_signature_is_refused() -> None:
    data = replace_stream(sample(PRESS_RELEASE).read_bytes(), "FileHeader", b"HWP Document Fil\0")
    with pytest.raises(ExtractionError, match="bad FileHeader signature"):
        read(data)


def test_missing_streams_are_refused() -> None:
    data = sample(PRESS_RELEASE).read_bytes()
    no_header = data.replace("FileHeader".encode("utf-16-le"), "FileHeadex".encode("utf-16-le"))
    with pytest.raises(ExtractionError, match="missing stream FileHeader"):
        read(no_header)
    no_section = data.replace("Section0".encode("utf-16-le"), "Sektion0".encode("utf-16-le"))
    with pytest.raises(ExtractionError, match="no BodyText/Section streams"):
        read(no_section)


def test_bad_deflate_data_is_refused() -> None:
    data = replace_stream(sample(PRESS_RELEASE).read_bytes(), "BodyText/Section0", b"\xff" * 64)
    with pytest.raises(ExtractionError, match="corrupt compressed section"):
        read(data)


def shortened(data: bytes, path: str, size: int) -> bytes:
    """The file with a stream's size in its directory entry lowered, cutting the stream short."""
    ole = olefile.OleFileIO(io.BytesIO(data))
    old_size = ole.get_size(path)
    ole.close()
    assert size >= 4096, "a stream below the mini-stream cutoff would be looked up elsewhere"
    name = path.rsplit("/", 1)[-1].encode("utf-16-le")
    for match in re.finditer(re.escape(name), data):
        # A directory entry: 64 bytes of name, ..., the stream size at offset 120.
        if struct.unpack_from("<I", data, match.start() + 120) == (old_size,):
            result = bytearray(data)
            struct.pack_into("<I", result, match.start() + 120, size)
            return bytes(result)
    raise AssertionError(f"no directory entry for {path}")


def test_truncated_deflate_stream_is_refused() -> None:
    data = shortened(sample(PRESS_RELEASE).read_bytes(), "BodyText/Section0", 4200)
    with pytest.raises(ExtractionError, match="truncated compressed section"):
        read(data)


def test_view_text_with_a_partial_aes_block_is_refused() -> None:
    data = shortened(sample(DISTRIBUTION).read_bytes(), "ViewText/Section0", 4800 - 5)
    with pytest.raises(ExtractionError, match="not a whole number of AES blocks"):
        read(data)


@pytest.mark.parametrize(
    "records",
    [
        record(PARA_TEXT, wchars("가나다", [13]))[:-2],  # payload cut short
        b"\x43\x00",  # half a record header
        struct.pack("<I", PARA_TEXT | 0xFFF << 20) + b"\x10",  # half an extended size
    ],
)
def test_truncated_records_are_refused(records: bytes) -> None:
    with pytest.raises(ExtractionError, match="truncated record"):
        read(with_body(records))


def test_view_text_without_its_key_record_is_refused() -> None:
    data = sample(DISTRIBUTION).read_bytes()
    data = replace_stream(data, "ViewText/Section0", record(PARA_TEXT, wchars("가", [13])))
    with pytest.raises(ExtractionError, match="lacks its distribution document record"):
        read(data)


def test_view_text_with_a_wrong_key_is_refused() -> None:
    data = sample(DISTRIBUTION).read_bytes()
    ole = olefile.OleFileIO(io.BytesIO(data))
    view_text = bytearray(ole.openstream("ViewText/Section0").read())
    ole.close()
    view_text[4] ^= 0xFF  # the seed: a different mask, so a different key
    with pytest.raises(ExtractionError, match="corrupt compressed section"):
        read(replace_stream(data, "ViewText/Section0", bytes(view_text)))


_PRESS_RELEASE_BYTES = (SAMPLES / PRESS_RELEASE).read_bytes() if (SAMPLES / PRESS_RELEASE).is_file() else b""


@pytest.mark.skipif(not _PRESS_RELEASE_BYTES, reason="sample absent")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, max(len(_PRESS_RELEASE_BYTES) - 1, 0)), st.integers(0, 255))),
    keep=st.integers(0, len(_PRESS_RELEASE_BYTES)),
)
def test_damaged_files_give_only_extraction_errors(edits: list[tuple[int, int]], keep: int) -> None:
    data = bytearray(_PRESS_RELEASE_BYTES[:keep])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    try:
        documents = read_hwp(bytes(data), "fuzz.hwp", "0" * 64)
    except ExtractionError as error:
        assert error.source == "fuzz.hwp"
        assert error.reason and "\n" not in error.reason
    else:
        assert all(isinstance(document.text, str) for document in documents)


@pytest.mark.skipif(not _PRESS_RELEASE_BYTES, reason="sample absent")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2000))
def test_random_record_streams_give_only_extraction_errors(body: bytes) -> None:
    try:
        documents = read_hwp(with_body(body), "fuzz.hwp", "0" * 64)
    except ExtractionError as error:
        assert error.reason and "\n" not in error.reason
    else:
        assert all(isinstance(document.text, str) for document in documents)


_ORACLE_LABELS = re.compile(
    r"\[(?:표|글상자|머리말|꼬리말|각주|미주|메모)\]|\[(?:이미지|표 안의 표)[^\]\n]*\]|⟨표 안의 표⟩"
)
"""Labels the oracles write in place of images, tables and text boxes: not document text."""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hangul_count_matches_the_oracles(name: str) -> None:
    dochan = pytest.importorskip("dochan")
    hwp_reader = pytest.importorskip("hwp_reader")
    path = sample(name)
    ours = hangul(read(path.read_bytes()))
    oracles = {
        "dochan": dochan.Dochan(str(path)).to_plain_text(),
        "ai-hwp-reader": hwp_reader.render(hwp_reader.read(str(path)), "text"),
    }
    for oracle, text in oracles.items():
        theirs = hangul(_ORACLE_LABELS.sub("", text))
        assert abs(ours - theirs) <= 0.03 * theirs, f"{oracle}: ours {ours}, theirs {theirs}"
