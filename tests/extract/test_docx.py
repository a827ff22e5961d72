"""DOCX written by python-docx: body order, tables, merged cells, damage."""

from __future__ import annotations

import io
import json

import docx
import pytest

from tests.extract.helpers import corpus, docx_bytes, zip_bytes
from tokenclub.errors import ExtractionError
from tokenclub.extract.docx import read_docx


def test_paragraphs_and_table_in_body_order() -> None:
    data = docx_bytes(
        [
            "제1조(목적) 이 법은 기후위기에 대응한다.",
            "제2조(정의) 이 법에서 사용하는 용어의 뜻은 다음과 같다.",
        ],
        title="탄소중립기본법",
        table=[["구분", "현행", "개정안"], ["제15조", "위원 위촉", "대표성 반영"]],
    )
    (doc,) = read_docx(data, "law.docx", "0" * 64)
    assert doc.text == (
        "제1조(목적) 이 법은 기후위기에 대응한다.\n"
        "제2조(정의) 이 법에서 사용하는 용어의 뜻은 다음과 같다.\n"
        "구분\t현행\t개정안\n"
        "제15조\t위원 위촉\t대표성 반영\n"
        "끝."
    )
    assert (doc.title, doc.format, doc.byte_size) == ("탄소중립기본법", "docx", len(data))


def test_merged_cells_are_read_once_and_nested_tables_in_place() -> None:
    document = docx.Document()
    grid = document.add_table(rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            grid.cell(r, c).text = f"칸{r}{c}"
    grid.cell(0, 0).merge(grid.cell(0, 1))  # across: 칸00 and 칸01 become one cell
    grid.cell(1, 2).merge(grid.cell(2, 2))  # down: 칸12 and 칸22 become one cell
    grid.cell(2, 0).add_table(1, 2).cell(0, 1).text = "중첩"
    out = io.BytesIO()
    document.save(out)
    (doc,) = read_docx(out.getvalue(), "t.docx", "0" * 64)
    assert doc.text == "칸00 칸01\t칸02\n칸10\t칸11\t칸12 칸22\n칸20 중첩\t칸21"


def test_real_petition_text_survives_a_docx_round_trip() -> None:
    line = corpus("petitions", "petitions_2019-04.jsonl").open(encoding="utf-8").readline()
    petition = json.loads(line)
    paragraphs = [p for p in petition["content"].split("\n") if p.strip()]
    (doc,) = read_docx(docx_bytes(paragraphs, title=petition["title"]), "p.docx", "0" * 64)
    assert doc.text == "\n".join([*paragraphs, "끝."])
    assert doc.title == petition["title"]


@pytest.mark.parametrize("kind", ["truncated", "no document part", "not xml"])
def test_damaged_docx_is_a_clear_failure(kind: str) -> None:
    good = docx_bytes(["본문"])
    broken = {
        "truncated": good[: len(good) // 2],
        "no document part": zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b""}),
        "not xml": zip_bytes({"word/document.xml": b"\x00\x01 not xml"}),
    }[kind]
    with pytest.raises(ExtractionError, match=r"^bad.docx: corrupt or unreadable DOCX \("):
        read_docx(broken, "bad.docx", "0" * 64)
