"""JSONL and CSV/TSV dumps: field choice, per-record failures, encodings, streaming."""

from __future__ import annotations

import io
import json
from itertools import islice

import pytest

from tests.extract.helpers import corpus, split
from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.records import ENCODING_SAMPLE_BYTES, RecordOptions, iter_csv, iter_jsonl

SHA = "ab" * 32


def jsonl(
    lines: list[bytes], options: RecordOptions | None = None
) -> list[ExtractedDocument | ExtractionFailure]:
    data = b"".join(lines)
    return list(iter_jsonl(io.BytesIO(data), "dump.jsonl", len(data), SHA, options or RecordOptions()))


def csv_items(
    data: bytes, *, tsv: bool = False, options: RecordOptions | None = None
) -> list[ExtractedDocument | ExtractionFailure]:
    name = "table.tsv" if tsv else "table.csv"
    return list(iter_csv(io.BytesIO(data), name, len(data), SHA, options or RecordOptions(), tsv=tsv))


def test_real_petitions_one_document_per_line() -> None:
    path = corpus("petitions", "petitions_2017-08.jsonl")
    data = path.read_bytes()
    records = [json.loads(line) for line in data.splitlines()]
    docs, failures = split(iter_jsonl(io.BytesIO(data), "p.jsonl", len(data), SHA, RecordOptions()))
    assert (len(docs), failures) == (662, [])
    assert [d.text for d in docs] == [r["content"] for r in records]
    first = docs[0]
    assert first.source == "p.jsonl#L1"
    assert first.title == "학교는 인력센터, 취업센터가 아닙니다. 정말 간곡히 부탁드립니다."
    assert first.metadata == {
        "category": "육아/교육",
        "begin": "2017-08-25",
        "end": "2017-09-24",
        "num_agree": "88",
        "petition_idx": "510",
        "status": "청원종료",
    }
    assert (first.format, first.byte_size, first.sha256) == ("jsonl", 1_838_533, SHA)
    assert docs[-1].source == "p.jsonl#L662"


def test_text_field_preference_and_longest_string_fallback() -> None:
    docs, _ = split(
        jsonl(
            [
                json.dumps({"제목": "짧은 제목", "본문": "본문 내용", "id": 7}, ensure_ascii=False).encode()
                + b"\n"
            ]
        )
    )
    assert [(d.text, d.title, d.metadata) for d in docs] == [("본문 내용", "짧은 제목", {"id": "7"})]
    docs, _ = split(jsonl([b'{"a": "short", "b": "the longest field", "n": 1.5, "ok": true}\n']))
    assert [(d.text, d.metadata) for d in docs] == [
        ("the longest field", {"a": "short", "n": "1.5", "ok": "true"})
    ]


def test_field_choice_is_fixed_by_the_first_record() -> None:
    lines = [b'{"Text": "first", "title": "t1"}\n', b'{"body": "no Text here"}\n', b'{"Text": "third"}\n']
    items = jsonl(lines)
    assert [(type(i).__name__, i.source) for i in items] == [
        ("ExtractedDocument", "dump.jsonl#L1"),
        ("ExtractionFailure", "dump.jsonl#L2"),
        ("ExtractedDocument", "dump.jsonl#L3"),
    ]
    assert items[1] == ExtractionFailure("dump.jsonl#L2", "record has no text field (Text)")


def test_options_select_text_title_and_metadata() -> None:
    line = json.dumps(
        {"q": "질문", "a": "답변", "topic": "인사", "rank": 3, "extra": "x"}, ensure_ascii=False
    ).encode()
    options = RecordOptions(text_fields=("q", "a"), meta_fields=("rank", "missing"), title_field="topic")
    (doc,) = jsonl([line], options)
    assert isinstance(doc, ExtractedDocument)
    assert (doc.text, doc.title, doc.metadata) == ("질문\n\n답변", "인사", {"rank": "3"})


def test_bad_lines_fail_alone_with_file_and_line() -> None:
    lines = [
        b'\xef\xbb\xbf{"text": "bom on the first line"}\n',
        b"\n",
        b'{"text": "broken\n',
        b'["not", "an object"]\n',
        b'{"text": "\xb0\xa1 cp949 bytes"}\n',
        b'{"text": 12}\n',
        b'{"text": "last"}',
    ]
    items = jsonl(lines)
    assert items == [
        ExtractedDocument("dump.jsonl#L1", "jsonl", "bom on the first line", None, len(b"".join(lines)), SHA),
        ExtractionFailure(
            "dump.jsonl#L3", "line 3: invalid JSON (Invalid control character at: line 1 column 17 (char 16))"
        ),
        ExtractionFailure("dump.jsonl#L4", "line 4: a JSON list, not an object"),
        ExtractionFailure("dump.jsonl#L5", "line 5: not UTF-8"),
        ExtractionFailure("dump.jsonl#L6", "field 'text' is not a string"),
        ExtractedDocument("dump.jsonl#L7", "jsonl", "last", None, len(b"".join(lines)), SHA),
    ]


def test_an_overlong_line_is_skipped_without_being_held_in_memory() -> None:
    lines = [b'{"text": "a"}\n', b'{"text": "' + b"x" * 5000 + b'"}\n', b'{"text": "c"}\n']
    items = jsonl(lines, RecordOptions(max_record_bytes=1000))
    assert [(type(i).__name__, i.source) for i in items] == [
        ("ExtractedDocument", "dump.jsonl#L1"),
        ("ExtractionFailure", "dump.jsonl#L2"),
        ("ExtractedDocument", "dump.jsonl#L3"),
    ]
    assert items[1] == ExtractionFailure("dump.jsonl#L2", "line 2 longer than 1000 bytes")


def test_a_10_mb_record_is_read() -> None:
    text = "가" * 4_000_000
    (doc,) = jsonl([json.dumps({"text": text}, ensure_ascii=False).encode()])
    assert isinstance(doc, ExtractedDocument)
    assert doc.text == text


class EndlessDump(io.RawIOBase):
    """A dump that never ends: reading it whole would never return."""

    def __init__(self) -> None:
        self.number = 0
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self.pending) < len(buffer):
            self.number += 1
            self.pending += json.dumps({"text": f"기사 {self.number}"}, ensure_ascii=False).encode() + b"\n"
        n = len(buffer)
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def test_records_stream_one_at_a_time() -> None:
    stream = io.BufferedReader(EndlessDump())
    first = list(islice(iter_jsonl(stream, "endless.jsonl", 0, SHA, RecordOptions()), 3))
    assert [d.text for d in first if isinstance(d, ExtractedDocument)] == ["기사 1", "기사 2", "기사 3"]


def test_real_chatbot_csv_with_both_columns_as_text() -> None:
    path = corpus("chatbot", "ChatbotData.csv")
    data = path.read_bytes()
    options = RecordOptions(text_fields=("Q", "A"))
    docs, failures = split(iter_csv(io.BytesIO(data), "ChatbotData.csv", len(data), SHA, options))
    assert (len(docs), failures) == (11_823, [])
    assert (docs[0].source, docs[0].text, docs[0].metadata) == (
        "ChatbotData.csv#L2",
        "12시 땡!\n\n하루가 또 가네요.",
        {"label": "0"},
    )
    assert docs[0].format == "csv"


def test_real_tsv_picks_the_comments_column() -> None:
    path = corpus("korean-hate-speech", "labeled", "dev.tsv")
    data = path.read_bytes()
    docs, failures = split(iter_csv(io.BytesIO(data), "dev.tsv", len(data), SHA, RecordOptions(), tsv=True))
    assert (len(docs), failures) == (471, [])
    assert (docs[0].text, docs[0].format) == ("송중기 시대극은 믿고본다. 첫회 신선하고 좋았다.", "tsv")
    assert docs[0].metadata == {"contain_gender_bias": "False", "bias": "none", "hate": "none"}


def test_cp949_csv_from_korean_excel() -> None:
    text = '제목,본문,날짜\n"첫 글","쉼표, 그리고 ""따옴표""",2024-01-02\n둘째,"여러 줄\n본문",2024-01-03\n'
    data = text.encode("cp949")
    docs, failures = split(csv_items(data))
    assert failures == []
    assert [(d.source, d.title, d.text, d.metadata) for d in docs] == [
        ("table.csv#L2", "첫 글", '쉼표, 그리고 "따옴표"', {"날짜": "2024-01-02"}),
        ("table.csv#L3", "둘째", "여러 줄\n본문", {"날짜": "2024-01-03"}),
    ]


def test_utf8_csv_with_excel_bom() -> None:
    (doc,) = csv_items("\ufeffcontent,id\n본문,1\n".encode())
    assert isinstance(doc, ExtractedDocument)
    assert (doc.text, doc.metadata) == ("본문", {"id": "1"})


def test_tsv_is_read_unquoted() -> None:
    (doc,) = csv_items('text\tid\n"인용"으로 시작하는 문장\t1\n'.encode(), tsv=True)
    assert isinstance(doc, ExtractedDocument)
    assert doc.text == '"인용"으로 시작하는 문장'


def test_ragged_rows_fail_alone() -> None:
    items = csv_items(b"text,id\none,1\ntwo\nthree,3\n")
    assert [type(i).__name__ for i in items] == [
        "ExtractedDocument",
        "ExtractionFailure",
        "ExtractedDocument",
    ]
    assert items[1] == ExtractionFailure("table.csv#L3", "line 3: 1 fields where the header has 2")


def test_a_cell_over_the_csv_modules_default_limit_is_read() -> None:
    text = "나" * 200_000
    (doc,) = csv_items(f"text\n{text}\n".encode())
    assert isinstance(doc, ExtractedDocument)
    assert doc.text == text


def test_bytes_past_the_encoding_sample_that_do_not_decode_stop_the_file_at_their_line() -> None:
    data = ("text\n" + "가나다\n" * 30_000).encode("utf-8") + b"\xff\xfe broken\n"
    assert len(data) > ENCODING_SAMPLE_BYTES
    items = iter_csv(io.BytesIO(data), "table.csv", len(data), SHA, RecordOptions())
    assert len(list(islice(items, 30_000))) == 30_000
    with pytest.raises(ExtractionError, match=r"^table.csv: line 30002: not valid utf-8-sig at byte 0$"):
        next(items)


def test_broken_utf8_within_the_sample_fails_the_file() -> None:
    with pytest.raises(ExtractionError, match=r"^table.csv: not text: invalid UTF-8 at byte 15$"):
        csv_items("text\n가나다\n".encode() + b"\xff\n")
