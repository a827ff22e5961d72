"""Normalization: exact outputs for each clean-up rule, hard-wrap rejoining, and real PDFs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import CORPORA
from tokenclub.curate.normalize import NormalizeStep, normalize_text

BILL_PDF = CORPORA / "samples" / "pdf" / "national-assembly-bill-2125318-original.pdf"
REVIEW_PDF = CORPORA / "samples" / "pdf" / "national-assembly-bill-2125318-review-report.pdf"


def pdf_text(path: Path) -> str:
    pdfium = pytest.importorskip("pypdfium2")
    if not path.exists():
        pytest.skip(f"{path} is not here")
    document = pdfium.PdfDocument(path)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # conjoining jamo compose into syllables (NFC)
        ("\u1112\u1161\u11ab\u1100\u1173\u11af", "한글"),
        # compatibility jamo survive: NFKC would have made them conjoining jamo
        ("ㅋㅋㅋ 진짜 웃기다 ㅠㅠ", "ㅋㅋㅋ 진짜 웃기다 ㅠㅠ"),
        ("① 제1항 ㈜한국", "① 제1항 ㈜한국"),
        # zero-width characters, BOM and soft hyphen
        ("\ufeff대\u200b한\u200c민\u200d국\u2060만\u00ad세", "대한민국만세"),
        # control characters go, tab stays
        ("가\x00나\x07다\x1b라\x7f마\tㅂ", "가나다라마\tㅂ"),
        # full-width ASCII and the ideographic space
        ("ＫＯＲＥＡ　２０２４！　（주）", "KOREA 2024! (주)"),
        ("가\u00a0나\u2003다\u202f라", "가 나 다 라"),
        # spaces collapse, ends are stripped
        ("  가   나    다  ", "가 나 다"),
        # line endings and blank lines
        ("첫 줄.\r\n둘째 줄.\r셋째 줄.\u2028넷째 줄.", "첫 줄.\n둘째 줄.\n셋째 줄.\n넷째 줄."),
        ("문단 하나.   \n\n\n\n\n문단 둘.\n\n문단 셋.", "문단 하나.\n\n문단 둘.\n\n문단 셋."),
        # a conjoining arae-a used as a middle dot
        ("탄소중립\u119e녹색성장", "탄소중립\u318d녹색성장"),
        ("", ""),
    ],
)
def test_character_rules(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


# Page 1 and 2 of bill 2125318 as pypdfium2 reads them (a public work of the National Assembly).
WRAPPED = (
    " 현행법은 기후위기 대응을 위해 국가 탄소중립 녹색성장 기본계획\r\n"
    "(이하 “탄소중립기본계획”이라 함)을 수립ㆍ시행하도록 하고, 탄소중\r\n"
    "립기본계획 및 주요 정책 등을 심의ㆍ의결하기 위하여 2050 탄소중립\r\n"
    "녹색성장위원회(이하 “탄소중립위원회”라 함)를 두도록 하고 있음.\r\n"
    " 그리고 탄소중립 사회로의 이행과 추진 과정에서 모든 국민의 민주\r\n"
    "적 참여를 보장함을 기본원칙으로 보장하고, 탄소중립위원회의 위원\r\n"
    "위촉에 있어 아동, 청년, 여성, 노동자, 농어민, 중소상공인, 시민사회\r\n"
    "단체 등 다양한 사회계층으로부터 후보를 추천받거나 의견을 들은 후\r\n"
    "각 사회계층의 대표성이 반영될 수 있도록 하여야 함을 규정하고 있\r\n"
    "음.\r\n"
    " 그런데 「탄소중립기본법」이 모든 국민의 민주적 참여를 보장하고, 다양한\r\n"
    "사회계층의 대표성이 반영될 수 있도록 탄소중립위원회 등을 구성하도록 규정\r\n"
    " 1. 아동ㆍ청년ㆍ여성을 각각 대표할 수 있는 대통령령으로 정하는\r\n"
    "요건을 갖춘 전국적 규모의 단체\r\n"
    " 2. 「노동조합 및 노동관계조정법」 제10조제2항에 따른 총연합단\r\n"
    "체, 전국적 규모의 산업별 연합단체 및 산업별 노동조합"
)


def test_hard_wrapped_lines_become_paragraphs() -> None:
    # 탄소중 / 립기본계획 and 민주 / 적 split words (both appear whole elsewhere): no space;
    # 있 / 음. too; 총연합단 / 체 has no evidence in this excerpt and keeps a space.
    assert normalize_text(WRAPPED).split("\n") == [
        "현행법은 기후위기 대응을 위해 국가 탄소중립 녹색성장 기본계획 (이하 “탄소중립기본계획”이라 함)을 "
        "수립ㆍ시행하도록 하고, 탄소중립기본계획 및 주요 정책 등을 심의ㆍ의결하기 위하여 2050 탄소중립 "
        "녹색성장위원회(이하 “탄소중립위원회”라 함)를 두도록 하고 있음.",
        "그리고 탄소중립 사회로의 이행과 추진 과정에서 모든 국민의 민주적 참여를 보장함을 기본원칙으로 "
        "보장하고, 탄소중립위원회의 위원 위촉에 있어 아동, 청년, 여성, 노동자, 농어민, 중소상공인, 시민사회 "
        "단체 등 다양한 사회계층으로부터 후보를 추천받거나 의견을 들은 후 각 사회계층의 대표성이 반영될 수 "
        "있도록 하여야 함을 규정하고 있음.",
        "그런데 「탄소중립기본법」이 모든 국민의 민주적 참여를 보장하고, 다양한 사회계층의 대표성이 "
        "반영될 수 있도록 탄소중립위원회 등을 구성하도록 규정",
        "1. 아동ㆍ청년ㆍ여성을 각각 대표할 수 있는 대통령령으로 정하는 요건을 갖춘 전국적 규모의 단체",
        "2. 「노동조합 및 노동관계조정법」 제10조제2항에 따른 총연합단 체, 전국적 규모의 산업별 연합단체 및 "
        "산업별 노동조합",
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # the whole split word occurs elsewhere
        (["총연합단체의 의견을 듣는다.", "전국적 규모의 산업별 총연합단", "체를 포함한다."], "총연합단체를"),
        # the tail never stands alone and with one more syllable begins a known word
        (["위원회의 구성에 관한 사항이다.", "이 경우 각 위원", "회가 정한다."], "위원회가"),
        # a particle never starts a word
        (["제도를 크게 강화", "에 관한 사항을 정한다."], "강화에 관한"),
        # no evidence, and the line is not full: the break stays
        (["제도를 크게 강화", "하는 사항을 정한다."], "강화\n하는"),
    ],
)
def test_breaks_inside_words(lines: list[str], expected: str) -> None:
    assert expected in normalize_text("\n".join(lines))


@pytest.mark.parametrize(
    "text",
    [
        # verse and short lines keep their breaks
        "산에는 꽃 피네\n꽃이 피네\n갈 봄 여름 없이\n꽃이 피네",
        "홈\n뉴스\n스포츠\n로그인",
        # a heading followed by an indented paragraph
        "제안이유 및 주요내용\n현행법은 기후위기 대응을 위한 기본계획을 수립하도록 하고 있음.",
        # sentence ends, list items and article headings
        "첫째 문장은 여기서 끝납니다.\n둘째 문장입니다.",
        "다음 각 호의 어느 하나에 해당하는 사람\n□ 추진 배경\n○ 세부 내용\n- 항목 하나\n제1조(목적) 이 법은",
    ],
)
def test_intentional_breaks_stay(text: str) -> None:
    assert normalize_text(text) == text


def test_paragraph_per_line_text_is_not_reflowed() -> None:
    long_line = "가나다라마바사 " * 30
    text = f"{long_line.strip()}\n{long_line.strip()}\n{long_line.strip()}"
    assert normalize_text(text) == text


def test_indentation_marks_a_new_paragraph() -> None:
    text = "제안이유 및 주요내용과 그 밖의 사항을 정리하면 다음과 같음\n  현행법은 기후위기 대응을 위함"
    assert (
        normalize_text(text)
        == "제안이유 및 주요내용과 그 밖의 사항을 정리하면 다음과 같음\n현행법은 기후위기 대응을 위함"
    )


def test_idempotent_on_samples() -> None:
    for sample in [WRAPPED, "ＡＢＣ\u200b  \r\n\r\n\r\n가", "탄소중립\u119e녹색"]:
        once = normalize_text(sample)
        assert normalize_text(once) == once


def test_national_assembly_pdfs() -> None:
    bill = normalize_text(pdf_text(BILL_PDF))
    review = normalize_text(pdf_text(REVIEW_PDF))
    for text in (bill, review):
        assert normalize_text(text) == text
        assert (
            "현행법은 기후위기 대응을 위해 국가 탄소중립 녹색성장 기본계획 (이하 “탄소중립기본계획”이라 "
            "함)을 수립ㆍ시행하도록 하고, 탄소중립기본계획 및 주요 정책 등을 심의ㆍ의결하기 위하여 2050 "
            "탄소중립녹색성장위원회(이하 “탄소중립위원회”라 함)를 두도록 하고 있음." in text.split("\n")
        )
        assert "\r" not in text
    assert (
        "1. 아동ㆍ청년ㆍ여성을 각각 대표할 수 있는 대통령령으로 정하는 요건을 갖춘 전국적 규모의 단체"
        in bill.split("\n")
    )
    # U+119E in the title became U+318D like the body text's middle dots
    assert "탄소중립ㆍ녹색성장 기본법" in review
    assert "\u119e" not in review
    assert pdf_text(BILL_PDF).count("\n") == 185
    assert bill.count("\n") == 102


def test_step_rewrites_live_rows_only() -> None:
    batch = pa.table(
        {
            "doc_id": ["a", "b", "c"],
            "text": ["ＡＢＣ  가", "  그대로  ", None],
            "reject_reason": [None, "language:not_korean", "extract:empty"],
        }
    )
    out = NormalizeStep().process(batch)
    assert out.column("text").to_pylist() == ["ABC 가", "  그대로  ", None]
    assert out.column("reject_reason").to_pylist() == [None, "language:not_korean", "extract:empty"]
    assert out.column_names == ["doc_id", "text", "reject_reason"]
