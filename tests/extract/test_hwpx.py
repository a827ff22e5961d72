"""HWPX reader: real samples, hand-built packages, hostile XML, damaged zips, and two oracles."""

from __future__ import annotations

import hashlib
import io
import random
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CORPORA
from tokenclub.errors import ExtractionError
from tokenclub.extract.hwpx import read_hwpx

SAMPLES = CORPORA / "samples" / "hwpx"
NOTICE = "gangnam-gu-notice-2023-745.hwpx"
PRESS_RELEASE = "mcst-press-release-2024-01-02.hwpx"
STANDARD = "public-data-standard-transit-center.hwpx"
GRADES = "table-grades.hwpx"

HP = "http://www.hancom.co.kr/hwpml/2011/paragraph"
HS = "http://www.hancom.co.kr/hwpml/2011/section"


class Expected(NamedTuple):
    hangul: int
    title: str | None
    phrases: tuple[str, ...]


EXPECTED = {
    NOTICE: Expected(
        hangul=452,
        title="본문내용본문내용",
        phrases=(
            "서울특별시 강남구 공고 제2023-745호",
            "서울특별시 강남구 공무직 관리 규정 일부개정규칙안 입법예고",
            "채용 절차상 서류전형과 면접전형 절차를 반드시 거치도록 개선하고자 함(제9조2항)",
        ),
    ),
    PRESS_RELEASE: Expected(
        hangul=682,
        title="3",
        phrases=(
            "2024 파리 올림픽·패럴림픽 준비하는 우리 선수단 격려한다",
            "양궁훈련장 등 훈련시설을 직접 살펴보고",
            # the header table
            "보도시점\n2024. 1. 2.(화) 08:00",
        ),
    ),
    STANDARD: Expected(
        hangul=3760,
        title="□ 공공데이터 개방 표준 분야 목록",
        phrases=(
            "공공데이터 제공 표준 (2023.5.18.)",
            # table cells
            "고시에 명기된 복합환승센터의 명칭",
            "서울역복합환승센터",
            "지방자치단체",
        ),
    ),
    GRADES: Expected(
        hangul=29,
        title="제목",
        phrases=("C반 기말고사", "이름\n국어\n영어\n수학\n개똥이\n89\n65\n78"),
    ),
}


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {path} is absent")
    return path


def read(data: bytes, source: str = "upload/doc.hwpx") -> str:
    [document] = read_hwpx(data, source, hashlib.sha256(data).hexdigest())
    return document.text


def hangul(text: str) -> int:
    return sum("가" <= char <= "힣" for char in text)


def package(parts: Mapping[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def section(body: str, prolog: str = "") -> str:
    return f'{prolog}<hs:sec xmlns:hs="{HS}" xmlns:hp="{HP}">{body}</hs:sec>'


def paragraph(*runs: str) -> str:
    return "<hp:p>" + "".join(f"<hp:run>{run}</hp:run>" for run in runs) + "</hp:p>"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_extracts(name: str) -> None:
    data = sample(name).read_bytes()
    [document] = read_hwpx(data, f"upload/{name}", "a" * 64)
    expected = EXPECTED[name]
    assert document.source == f"upload/{name}"
    assert document.format == "hwpx"
    assert document.byte_size == len(data)
    assert document.sha256 == "a" * 64
    assert document.title == expected.title
    assert hangul(document.text) == expected.hangul
    for phrase in expected.phrases:
        assert phrase in document.text


def test_package_without_manifest_reads_the_same_text() -> None:
    data = sample(NOTICE).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as original:
        parts = {
            name: original.read(name)
            for name in original.namelist()
            if not name.startswith("META-INF/") and name != "Contents/content.hpf"
        }
    [document] = read_hwpx(package(parts), "bare.hwpx", "0" * 64)
    assert document.title is None
    assert document.text == read(data)


def test_sections_are_read_in_numeric_order() -> None:
    parts: dict[str, bytes | str] = {
        f"Contents/section{n}.xml": section(paragraph(f"<hp:t>제{n}절</hp:t>")) for n in (10, 2, 0, 1)
    }
    assert read(package(parts)) == "제0절\n제1절\n제2절\n제10절"


def test_inline_elements_nested_paragraphs_and_entities() -> None:
    table = (
        "<hp:tbl><hp:tr><hp:tc><hp:subList>"
        + paragraph("<hp:t>셀 하나</hp:t>")
        + "</hp:subList></hp:tc><hp:tc><hp:subList>"
        + paragraph("<hp:t>셀 둘</hp:t>")
        + "</hp:subList></hp:tc></hp:tr></hp:tbl>"
    )
    body = (
        paragraph(
            "<hp:t>가<hp:tab/>나<hp:lineBreak/>다<hp:nbSpace/>라<hp:fwSpace/>마<hp:hyphen/>바</hp:t>",
            "<hp:t>사<hp:markpenBegin/>아<hp:markpenEnd/></hp:t>",
        )
        + paragraph("<hp:t>표 앞</hp:t>", table, "<hp:t> 표 뒤</hp:t>")
        + "<hp:p><hp:run/></hp:p>"  # no text runs: no line
        + paragraph("<hp:t>\u1112\u1161\u11ab글 &amp; &#xD55C;</hp:t>")
    )
    assert read(package({"Contents/section0.xml": section(body)})).split("\n") == [
        "가\t나",
        "다 라 마-바사아",
        "표 앞 표 뒤",
        "셀 하나",
        "셀 둘",
        "한글 & 한",
    ]


def test_entities_are_neither_expanded_nor_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("비밀번호", encoding="utf-8")
    prolog = (
        f'<!DOCTYPE hs:sec [<!ENTITY file SYSTEM "file://{secret}">'
        '<!ENTITY a "ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    )
    body = paragraph("<hp:t>앞 &file; &c; 뒤</hp:t>")
    text = read(package({"Contents/section0.xml": section(body, prolog)}))
    assert "비밀번호" not in text
    assert "ㅋ" not in text
    assert text.startswith("앞") and text.endswith("뒤")


def test_title_from_package_metadata() -> None:
    hpf = (
        '<opf:package xmlns:opf="http://www.idpf.org/2007/opf/"><opf:metadata>'
        "<opf:title> 입찰 공고 </opf:title></opf:metadata></opf:package>"
    )
    parts: dict[str, bytes | str] = {
        "Contents/content.hpf": hpf,
        "Contents/section0.xml": section(paragraph("<hp:t>본문</hp:t>")),
    }
    [document] = read_hwpx(package(parts), "t.hwpx", "0" * 64)
    assert document.title == "입찰 공고"
    parts["Contents/content.hpf"] = "<opf:package"  # a broken package file costs only the title
    [document] = read_hwpx(package(parts), "t.hwpx", "0" * 64)
    assert (document.title, document.text) == (None, "본문")


def test_damaged_manifest_does_not_block_the_text() -> None:
    manifest = b'<odf:manifest xmlns:odf="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("Contents/section0.xml", section(paragraph("<hp:t>본문</hp:t>")))
    data = buffer.getvalue().replace(manifest, manifest.replace(b"odf:manifest ", b"odf:manifesT "), 1)
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(zipfile.BadZipFile):
        archive.read("META-INF/manifest.xml")  # the CRC no longer matches
    assert read(data) == "본문"


def test_encrypted_package_is_refused() -> None:
    manifest = (
        '<odf:manifest xmlns:odf="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<odf:file-entry odf:full-path="Contents/section0.xml"><odf:encryption-data/></odf:file-entry>'
        "</odf:manifest>"
    )
    data = package({"META-INF/manifest.xml": manifest, "Contents/section0.xml": b"\x8f\x00\x13"})
    with pytest.raises(ExtractionError) as error:
        read(data, "locked.hwpx")
    assert (error.value.source, error.value.reason) == ("locked.hwpx", "password-protected HWPX document")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not an HWPX package"),
        (random.Random(3).randbytes(5000), "not an HWPX package"),
        (package({"word/document.xml": "<w:document/>"}), "no Contents/section"),
        (package({"Contents/section0.xml": "<hs:sec><hp:p>"}), "malformed XML in Contents/section0.xml"),
        (package({"Contents/section0.xml": b"\xff\xfe\x00<"}), "malformed XML"),
    ],
)
def test_malformed_packages_are_refused(content: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError, match=re.escape(reason)) as error:
        read(content)
    assert "\n" not in error.value.reason


def test_truncated_and_corrupted_zips_are_refused() -> None:
    data = sample(GRADES).read_bytes()
    for cut in (0, 30, len(data) // 2, len(data) - 10):
        with pytest.raises(ExtractionError):
            read(data[:cut])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("Contents/section0.xml")
    corrupted = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    corrupted[start : start + 50] = bytes(50)
    with pytest.raises(ExtractionError, match=re.escape("unreadable package part Contents/section0.xml")):
        read(bytes(corrupted))


_GRADES_BYTES = (SAMPLES / GRADES).read_bytes() if (SAMPLES / GRADES).is_file() else b""


@pytest.mark.skipif(not _GRADES_BYTES, reason="sample absent")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(st.tuples(st.integers(0, max(len(_GRADES_BYTES) - 1, 0)), st.integers(0, 255))),
    keep=st.integers(0, len(_GRADES_BYTES)),
)
def test_damaged_packages_give_only_extraction_errors(edits: list[tuple[int, int]], keep: int) -> None:
    data = bytearray(_GRADES_BYTES[:keep])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    try:
        documents = read_hwpx(bytes(data), "fuzz.hwpx", "0" * 64)
    except ExtractionError as error:
        assert error.source == "fuzz.hwpx"
        assert error.reason and "\n" not in error.reason
    else:
        assert all(isinstance(document.text, str) for document in documents)


@settings(max_examples=200, deadline=None)
@given(xml=st.binary(max_size=500) | st.text(max_size=300).map(lambda text: section(text).encode()))
def test_arbitrary_section_xml_gives_only_extraction_errors(xml: bytes) -> None:
    try:
        documents = read_hwpx(package({"Contents/section0.xml": xml}), "fuzz.hwpx", "0" * 64)
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
