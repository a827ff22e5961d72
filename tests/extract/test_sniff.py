"""Format detection: content first, the name only where the content cannot tell."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest

from tests.extract.helpers import corpus, docx_bytes, epub_bytes, tar_bytes, zip_bytes
from tokenclub.extract.sniff import Format, inner_name, sniff, sniff_head


def sniffed(data: bytes, name: str) -> tuple[Format, str]:
    return sniff(io.BytesIO(data), name)


def test_docx_named_txt_is_docx() -> None:
    assert sniffed(docx_bytes(["본문"]), "report.txt") == (Format.DOCX, "")


def test_epub_named_zip_is_epub() -> None:
    assert sniffed(epub_bytes([("c1.xhtml", "<p>하나</p>")]), "book.zip") == (Format.EPUB, "")


def test_real_hwpx_is_hwpx_under_any_name() -> None:
    data = corpus("samples", "hwpx", "table-grades.hwpx").read_bytes()
    assert sniffed(data, "table-grades.hwpx") == (Format.HWPX, "")
    assert sniffed(data, "renamed.zip") == (Format.HWPX, "")


def test_hwpx_without_mimetype_is_recognised_by_its_sections() -> None:
    data = zip_bytes({"Contents/section0.xml": b"<sec/>", "Contents/header.xml": b"<head/>"})
    assert sniffed(data, "notice.bin") == (Format.HWPX, "")


def test_real_hwp_is_hwp_even_named_pdf() -> None:
    data = corpus("samples", "hwp", "msit-press-release-nuri-rocket.hwp").read_bytes()
    assert sniffed(data, "press.pdf") == (Format.HWP, "")


def test_real_pdf_named_txt_is_pdf() -> None:
    data = corpus("samples", "pdf", "national-assembly-bill-2125318-original.pdf").read_bytes()
    assert sniffed(data, "bill.txt") == (Format.PDF, "")


def test_plain_zip_is_an_archive() -> None:
    assert sniffed(zip_bytes({"a.txt": b"hello"}), "upload.dat") == (Format.ZIP, "")


def test_office_packages_other_than_docx_are_not_unpacked_as_archives() -> None:
    xlsx = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    odt = zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"})
    assert sniffed(xlsx, "sheet.xlsx") == (
        Format.UNSUPPORTED,
        "Office Open XML file other than DOCX (xlsx, pptx)",
    )
    assert sniffed(odt, "doc.zip") == (
        Format.UNSUPPORTED,
        "OpenDocument file (application/vnd.oasis.opendocument.text)",
    )


def test_tar_and_compression_by_magic() -> None:
    tar = tar_bytes({"a.txt": b"x"})
    assert sniffed(tar, "noext") == (Format.TAR, "")
    assert sniffed(gzip.compress(b"hello"), "noext") == (Format.GZIP, "")
    assert sniffed(bz2.compress(b"hello"), "noext") == (Format.BZIP2, "")
    assert sniffed(lzma.compress(b"hello"), "noext") == (Format.XZ, "")


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (b"<!DOCTYPE html><html><body>x</body></html>", "page.txt", Format.HTML),
        (b"\xef\xbb\xbf  <html lang='ko'><p>x</p></html>", "noext", Format.HTML),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>', "a.xml", Format.HTML),
        (b'{"text": "\xec\x95\x88\xeb\x85\x95"}\n{"text": "b"}\n', "dump.txt", Format.JSONL),
        (b'{"text": "a"}\n', "dump.json", Format.JSONL),
        (b"{broken\n", "dump.jsonl", Format.JSONL),
        (b"a,b\n1,2\n", "table.csv", Format.CSV),
        (b"a\tb\n1\t2\n", "table.tsv", Format.TSV),
        (b"# \xec\xa0\x9c\xeb\xaa\xa9\n", "readme.md", Format.MARKDOWN),
        (b"plain words", "notes", Format.TEXT),
        (b"plain words", "notes.pdf", Format.TEXT),
        (b"plain words", "notes.docx", Format.TEXT),
    ],
)
def test_text_formats(head: bytes, name: str, expected: Format) -> None:
    assert sniff_head(head, name) == (expected, "")


@pytest.mark.parametrize(
    ("head", "name", "what"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "scan.txt", "PNG image"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "a.zip", "7-Zip archive"),
        (b"Rar!\x1a\x07\x01\x00", "a.zip", "RAR archive"),
        (
            b"HWP Document File V3.00 \x1a\x01\x02",
            "old.hwp",
            "HWP 3.x document (pre-2002 format); save it as HWP 5 or HWPX",
        ),
        (b'[{"text": "a"}]', "dump.json", "JSON document that is not JSON Lines (one object per line)"),
        (b'<?xml version="1.0"?><rss/>', "feed.xml", "XML document (other than XHTML)"),
    ],
)
def test_unsupported_formats_say_what_they_are(head: bytes, name: str, what: str) -> None:
    assert sniff_head(head, name) == (Format.UNSUPPORTED, what)


def test_a_jsonl_whose_first_line_outruns_the_head_is_still_jsonl() -> None:
    head = b'{"text": "' + b"a" * 70_000
    assert sniff_head(head[: 64 * 1024], "dump.txt") == (Format.JSONL, "")


def test_sniff_leaves_the_file_at_its_start() -> None:
    file = io.BytesIO(zip_bytes({"a.txt": b"x"}))
    file.seek(5)
    sniff(file, "a.zip")
    assert file.tell() == 0


@pytest.mark.parametrize(
    ("name", "compression", "inner"),
    [
        ("reviews.jsonl.gz", Format.GZIP, "reviews.jsonl"),
        ("corpus.TGZ", Format.GZIP, "corpus.tar"),
        ("books.tar.bz2", Format.BZIP2, "books.tar"),
        ("notes.txt.xz", Format.XZ, "notes.txt"),
        ("noext", Format.GZIP, "noext"),
    ],
)
def test_inner_name(name: str, compression: Format, inner: str) -> None:
    assert inner_name(name, compression) == inner
