"""EPUB: spine order from the package, chapters' text, DRM and broken packages."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.extract.helpers import CONTAINER_XML, epub_bytes, zip_bytes
from tokenclub.errors import ExtractionError
from tokenclub.extract.epub import read_epub

CHAPTERS = [
    ("text/ch1.xhtml", "<h1>제1장 봄</h1><p>겨울이 지나고&nbsp;봄이 왔다.</p>"),
    ("text/ch2.xhtml", "<h1>제2장 여름</h1><p>장마가 길었다.</p><p>매미가 <em>울었다</em>.</p>"),
    ("text/ch3.xhtml", "<h1>제3장 가을</h1><p>낙엽이 졌다.</p>"),
]


def test_chapters_in_spine_order_with_title_and_language() -> None:
    data = epub_bytes(CHAPTERS, title="사계절", spine=[2, 0, 1])
    (doc,) = read_epub(data, "seasons.epub", "0" * 64)
    assert doc.text == (
        "제3장 가을\n낙엽이 졌다.\n\n"
        "제1장 봄\n겨울이 지나고 봄이 왔다.\n\n"
        "제2장 여름\n장마가 길었다.\n매미가 울었다."
    )
    assert (doc.title, doc.metadata, doc.format, doc.byte_size) == (
        "사계절",
        {"language": "ko"},
        "epub",
        len(data),
    )


def test_hrefs_are_percent_decoded() -> None:
    data = epub_bytes([("ch 1.xhtml", "<p>공백이 든 파일 이름</p>")])
    data = data.replace(b'href="ch 1.xhtml"', b'href="ch%201.xhtml"')
    (doc,) = read_epub(data, "b.epub", "0" * 64)
    assert doc.text == "공백이 든 파일 이름"


def test_epub_written_by_ebooklib() -> None:
    epub = pytest.importorskip("ebooklib.epub")
    book = epub.EpubBook()
    book.set_identifier("tokenclub-test")
    book.set_title("작은 책")
    book.set_language("ko")
    chapters = []
    for number, body in enumerate(["<p>첫째 장의 문장.</p>", "<p>둘째 장의 문장.</p>"], start=1):
        chapter = epub.EpubHtml(title=f"{number}장", file_name=f"chap_{number}.xhtml", lang="ko")
        chapter.content = f"<h1>{number}장</h1>{body}"
        book.add_item(chapter)
        chapters.append(chapter)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book)
    (doc,) = read_epub(out.getvalue(), "small.epub", "0" * 64)
    assert doc.title == "작은 책"
    assert doc.text.endswith("1장\n첫째 장의 문장.\n\n2장\n둘째 장의 문장.")


def test_drm_encrypted_chapters_are_refused() -> None:
    encryption = b"""<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
        xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
      <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
        <enc:CipherData><enc:CipherReference URI="OEBPS/text/ch2.xhtml"/></enc:CipherData>
      </enc:EncryptedData></encryption>"""
    data = epub_bytes(CHAPTERS[1:2], extra={"META-INF/encryption.xml": encryption})
    with pytest.raises(
        ExtractionError, match=r"^drm.epub: DRM-protected EPUB \(its chapters are encrypted\)$"
    ):
        read_epub(data, "drm.epub", "0" * 64)


def test_obfuscated_fonts_alone_are_not_drm() -> None:
    encryption = b"""<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
        xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
      <enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>
        <enc:CipherData><enc:CipherReference URI="OEBPS/fonts/nanum.otf"/></enc:CipherData>
      </enc:EncryptedData></encryption>"""
    data = epub_bytes(CHAPTERS[2:], extra={"META-INF/encryption.xml": encryption})
    (doc,) = read_epub(data, "fonts.epub", "0" * 64)
    assert doc.text == "제3장 가을\n낙엽이 졌다."


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"mimetype": b"application/epub+zip"}, "EPUB lacks META-INF/container.xml"),
        ({"META-INF/container.xml": b"<container/>"}, "EPUB's container.xml names no package document"),
        ({"META-INF/container.xml": CONTAINER_XML}, "EPUB lacks OEBPS/content.opf"),
        (
            {
                "META-INF/container.xml": CONTAINER_XML,
                "OEBPS/content.opf": b'<package><manifest><item id="a" href="gone.xhtml" media-type='
                b'"application/xhtml+xml"/></manifest><spine><itemref idref="a"/></spine></package>',
            },
            "EPUB's spine names a missing file: OEBPS/gone.xhtml",
        ),
    ],
)
def test_broken_packages_say_what_is_missing(members: dict[str, bytes], reason: str) -> None:
    with pytest.raises(ExtractionError) as caught:
        read_epub(zip_bytes(members), "bad.epub", "0" * 64)
    assert (caught.value.source, caught.value.reason) == ("bad.epub", reason)


def test_truncated_epub_is_a_clear_failure() -> None:
    data = epub_bytes(CHAPTERS)
    with pytest.raises(ExtractionError, match=r"^cut.epub: corrupt EPUB \(BadZipFile: "):
        read_epub(data[: len(data) // 2], "cut.epub", "0" * 64)
    assert zipfile.is_zipfile(io.BytesIO(data))
