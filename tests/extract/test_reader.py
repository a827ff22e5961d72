"""The entry point: real corpora end to end, mixed uploads, hostile input, and fuzzing."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.extract.helpers import corpus, docx_bytes, epub_bytes, split, tar_bytes, zip_bytes
from tokenclub.errors import ExtractionError
from tokenclub.extract.archive import ArchiveLimits, Budget, blob_from_bytes, iter_tar, iter_zip
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.docx import read_docx
from tokenclub.extract.epub import read_epub
from tokenclub.extract.html import read_html
from tokenclub.extract.pdf import read_pdf
from tokenclub.extract.reader import iter_extract, iter_extract_bytes
from tokenclub.extract.records import RecordOptions, iter_csv, iter_jsonl
from tokenclub.extract.text import read_text

BILL = ("samples", "pdf", "national-assembly-bill-2125318-original.pdf")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_nsmc_reviews_stream_from_gzip() -> None:
    path = corpus("nsmc", "reviews.jsonl.gz")
    docs = 0
    failures: list[ExtractionFailure] = []
    first = last = None
    for item in iter_extract(path, source="reviews.jsonl.gz"):
        if isinstance(item, ExtractionFailure):
            failures.append(item)
        else:
            docs += 1
            first = first or item
            last = item
    assert docs + len(failures) == 712_404  # one review a line, per SOURCES.md
    assert (docs, len(failures)) == (712_383, 21)
    assert {f.reason for f in failures} == {"no text"}
    assert failures[0].source == "reviews.jsonl.gz#L37424"
    assert first is not None and last is not None
    assert (first.source, first.text, first.format) == (
        "reviews.jsonl.gz#L1",
        "전체관람가는 아닌것 같아요",
        "jsonl",
    )
    assert first.metadata == {
        "movie_id": "10001",
        "review_id": "10275182",
        "date": "15.08.25",
        "rating": "10",
    }
    assert last.source == "reviews.jsonl.gz#L712404"
    # Records carry the uploaded file's size and hash: the .gz, not its content.
    assert (first.byte_size, first.sha256) == (path.stat().st_size, sha(path.read_bytes()))


def test_petitions_folder_is_walked_in_name_order() -> None:
    folder = corpus("petitions")
    items = list(iter_extract(folder, source="petitions"))
    docs, failures = split(items)
    assert (len(docs), len(failures)) == (3_030, 22)  # 3,052 petitions, 22 of them with empty content
    assert {f.reason for f in failures} == {"no text"}
    assert docs[0].source == "petitions/petitions_2017-08.jsonl#L1"
    assert docs[-1].source == "petitions/petitions_2019-07.jsonl#L610"
    per_file = Counter(i.source.split("#")[0].removeprefix("petitions/") for i in items)
    assert per_file == {  # the line counts of SOURCES.md
        "petitions_2017-08.jsonl": 662,
        "petitions_2019-04.jsonl": 494,
        "petitions_2019-05.jsonl": 714,
        "petitions_2019-06.jsonl": 572,
        "petitions_2019-07.jsonl": 610,
    }


def test_real_samples_folder() -> None:
    pytest.importorskip("tokenclub.extract.hwp")
    pytest.importorskip("tokenclub.extract.hwpx")
    folder = corpus("samples")
    docs, failures = split(iter_extract(folder, source="samples"))
    assert failures == []
    formats = Counter(d.format for d in docs)
    assert (formats["pdf"], formats["hwp"], formats["hwpx"]) == (2, 3, 4)
    for doc in docs:
        data = (folder / doc.source.removeprefix("samples/")).read_bytes()
        assert (doc.byte_size, doc.sha256) == (len(data), sha(data))


def test_a_mixed_upload_reads_every_good_file_and_names_every_bad_one() -> None:
    bill = corpus(*BILL).read_bytes()
    petitions = corpus("petitions", "petitions_2019-06.jsonl").read_bytes()
    report = docx_bytes(["보고서 본문입니다."], title="보고서")
    inner = zip_bytes({"옛글.txt": "똠방각하 햏자".encode("cp949")})
    upload = zip_bytes(
        {
            "01-bill.pdf": bill,
            "02-petitions.jsonl": petitions,
            "03-report.txt": report,  # a DOCX with the wrong extension
            "04-broken.pdf": bill[:5000],
            "05-empty.txt": b"",
            "06-photo.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 100,
            "../07-escape.txt": b"outside",
            "08-inner.zip": inner,
            "09-notes.tar.gz": tar_bytes({"notes/읽기.md": "# 메모\n본문".encode()}, gzip=True),
            "10-book.epub": epub_bytes([("c.xhtml", "<p>책의 본문.</p>")], title="책"),
        }
    )
    empty = [n for n, line in enumerate(petitions.splitlines(), 1) if not json.loads(line)["content"].strip()]
    items = list(iter_extract_bytes(upload, "upload.zip"))
    docs, failures = split(items)
    assert [(f.source, f.reason) for f in failures] == [
        *((f"upload.zip!02-petitions.jsonl#L{n}", "no text") for n in empty),
        (
            "upload.zip!04-broken.pdf",
            "corrupt or unreadable PDF (Failed to load document (PDFium: Data format error).)",
        ),
        ("upload.zip!05-empty.txt", "empty file"),
        ("upload.zip!06-photo.jpg", "unsupported format: JPEG image"),
        ("upload.zip!../07-escape.txt", "unsafe path (absolute or with '..'); skipped"),
    ]
    by_file = Counter(d.source.split("#")[0] for d in docs)
    assert by_file == {
        "upload.zip!01-bill.pdf": 1,
        "upload.zip!02-petitions.jsonl": 572 - len(empty),
        "upload.zip!03-report.txt": 1,
        "upload.zip!08-inner.zip!옛글.txt": 1,
        "upload.zip!09-notes.tar.gz!notes/읽기.md": 1,
        "upload.zip!10-book.epub": 1,
    }
    named = {d.source: d for d in docs}
    assert named["upload.zip!03-report.txt"].format == "docx"
    assert named["upload.zip!08-inner.zip!옛글.txt"].text == "똠방각하 햏자"
    assert (
        named["upload.zip!09-notes.tar.gz!notes/읽기.md"].title,
        named["upload.zip!10-book.epub"].text,
    ) == (
        "메모",
        "책의 본문.",
    )
    pdf = named["upload.zip!01-bill.pdf"]
    assert (pdf.byte_size, pdf.sha256) == (len(bill), sha(bill))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    assert list(iter_extract(tmp_path / "empty.txt", source="empty.txt")) == [
        ExtractionFailure("empty.txt", "empty file")
    ]
    assert list(iter_extract(tmp_path / "missing.txt")) == [
        ExtractionFailure(str(tmp_path / "missing.txt"), "cannot open: No such file or directory")
    ]


def test_whitespace_only_text_is_no_text() -> None:
    assert list(iter_extract_bytes(b" \n\t\n", "blank.txt")) == [ExtractionFailure("blank.txt", "no text")]


def test_a_10_mb_single_line_in_text_jsonl_and_csv() -> None:
    line = "한" * (10 * 1024 * 1024 // 3 + 1)
    encoded = line.encode()
    assert len(encoded) > 10 * 1024 * 1024
    (text_doc,) = iter_extract_bytes(encoded, "line.txt")
    (jsonl_doc,) = iter_extract_bytes(json.dumps({"text": line}, ensure_ascii=False).encode(), "line.jsonl")
    (csv_doc,) = iter_extract_bytes(b"text\n" + encoded + b"\n", "line.csv")
    for doc in (text_doc, jsonl_doc, csv_doc):
        assert isinstance(doc, ExtractedDocument)
        assert doc.text == line


def test_compressed_files_are_transparent_and_documents_describe_the_upload() -> None:
    records = b'{"text": "\xed\x95\x98\xeb\x82\x98"}\n{"text": "\xeb\x91\x98"}\n'
    packed = gzip.compress(records)
    docs, _ = split(iter_extract_bytes(packed, "dump.jsonl.gz"))
    assert [(d.source, d.text, d.byte_size, d.sha256) for d in docs] == [
        ("dump.jsonl.gz#L1", "하나", len(packed), sha(packed)),
        ("dump.jsonl.gz#L2", "둘", len(packed), sha(packed)),
    ]
    bill = corpus(*BILL).read_bytes()
    packed_pdf = bz2.compress(bill)
    (doc,) = iter_extract_bytes(packed_pdf, "bill.pdf.bz2")
    assert isinstance(doc, ExtractedDocument)
    assert (doc.format, doc.byte_size, doc.sha256) == ("pdf", len(packed_pdf), sha(packed_pdf))


def test_nesting_deeper_than_the_limit_fails_at_the_limit() -> None:
    data = zip_bytes({"deep.txt": b"bottom"})
    for level in range(3):
        data = zip_bytes({f"level{level}.zip": data})
    docs, failures = split(iter_extract_bytes(data, "top.zip", limits=ArchiveLimits(max_depth=3)))
    assert docs == []
    assert failures == [
        ExtractionFailure("top.zip!level2.zip!level1.zip!level0.zip", "archives nested more than 3 deep")
    ]
    (doc,) = iter_extract_bytes(data, "top.zip", limits=ArchiveLimits(max_depth=4))
    assert (
        isinstance(doc, ExtractedDocument)
        and doc.source == "top.zip!level2.zip!level1.zip!level0.zip!deep.txt"
    )


def test_expansion_limit_stops_the_upload_with_one_failure() -> None:
    upload = zip_bytes({f"{n}.txt": f"문서 {n}".encode() * 100 for n in range(10)})  # 800 bytes each
    items = list(iter_extract_bytes(upload, "up.zip", limits=ArchiveLimits(max_total_bytes=3000)))
    assert [type(i).__name__ for i in items] == ["ExtractedDocument"] * 3 + ["ExtractionFailure"]
    assert items[-1] == ExtractionFailure("up.zip", "expands to more than 3000 bytes; reading stopped")


def test_oversized_single_file_is_refused() -> None:
    limits = ArchiveLimits(max_member_size=1000)
    assert list(iter_extract_bytes(b"x" * 1001, "big.txt", limits=limits)) == [
        ExtractionFailure("big.txt", "1001 bytes, more than the 1000 read whole")
    ]


def test_record_options_reach_the_records() -> None:
    data = "Q,A\n안녕,반가워\n".encode()
    (doc,) = iter_extract_bytes(data, "qa.csv", options=RecordOptions(text_fields=("Q", "A")))
    assert isinstance(doc, ExtractedDocument) and doc.text == "안녕\n\n반가워"


def test_a_reader_bug_costs_one_file_not_the_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("tokenclub.extract.pdf.read_pdf", broken)
    upload = zip_bytes({"a.pdf": b"%PDF-1.4 whatever", "b.txt": "멀쩡한 글".encode()})
    items = list(iter_extract_bytes(upload, "up.zip"))
    assert items[0] == ExtractionFailure(
        "up.zip!a.pdf", "internal error while reading (ZeroDivisionError: division by zero)"
    )
    assert isinstance(items[1], ExtractedDocument) and items[1].text == "멀쩡한 글"


# --- fuzzing --------------------------------------------------------------------------------


def blank_pdf() -> bytes:
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


SEEDS = {
    "blank.pdf": blank_pdf(),
    "text.txt": "대한민국은 민주공화국이다.\n".encode("cp949"),
    "page.html": "<html><head><title>제목</title></head><body><p>본문 문단.</p></body></html>".encode(),
    "dump.jsonl": b'{"text": "a", "n": 1}\n{"content": "b"}\n',
    "table.csv": "제목,본문\n가,나\n".encode("cp949"),
    "doc.docx": docx_bytes(["문단"], table=[["가", "나"]]),
    "book.epub": epub_bytes([("c.xhtml", "<p>장</p>")]),
    "up.zip": zip_bytes({"a.txt": b"hello", "b/c.jsonl": b'{"text": "x"}\n'}),
    "up.tar.gz": tar_bytes({"a.txt": b"hello"}, gzip=True),
    "x.gz": gzip.compress(b"hello world\n"),
}
READERS = [read_text, read_html, read_pdf, read_docx, read_epub]


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid file with bytes overwritten and perhaps cut short, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.sampled_from(sorted(SEEDS))), draw(st.binary(max_size=2048))
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    end = draw(st.integers(1, len(data)))
    return name, bytes(data[:end])


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(case=hostile(), reader=st.sampled_from(READERS))
def test_readers_raise_only_extraction_error(case: tuple[str, bytes], reader: object) -> None:
    _, data = case
    with contextlib.suppress(ExtractionError):
        reader(data, "fuzz", "0" * 64)  # type: ignore[operator]


@FUZZ
@given(case=hostile())
def test_streaming_readers_raise_only_extraction_error(case: tuple[str, bytes]) -> None:
    _, data = case
    options = RecordOptions()
    for read in (
        lambda: list(iter_jsonl(io.BytesIO(data), "f", len(data), "0", options)),
        lambda: list(iter_csv(io.BytesIO(data), "f", len(data), "0", options)),
        lambda: [
            getattr(m, "name", m) for m in iter_zip(blob_from_bytes(data), "f", Budget(ArchiveLimits(), "f"))
        ],
        lambda: [
            getattr(m, "name", m) for m in iter_tar(io.BytesIO(data), "f", Budget(ArchiveLimits(), "f"))
        ],
    ):
        with contextlib.suppress(ExtractionError):
            read()


@FUZZ
@given(case=hostile())
def test_iter_extract_bytes_never_raises_nor_hits_a_reader_bug(case: tuple[str, bytes]) -> None:
    name, data = case
    for item in iter_extract_bytes(data, name):
        assert isinstance(item, ExtractedDocument | ExtractionFailure)
        if isinstance(item, ExtractionFailure):
            assert not item.reason.startswith("internal error"), item
        else:
            assert item.text.strip()
