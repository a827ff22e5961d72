"""HTML: main content without boilerplate, titles, declared legacy encodings, short pages."""

from __future__ import annotations

import pytest

from tokenclub.errors import ExtractionError
from tokenclub.extract.html import declared_charset, markup_root, read_html, visible_text

ARTICLE = """<!doctype html>
<html lang="ko"><head><meta charset="{charset}"><title>탄소중립 기본법 개정안 발의 | 국회뉴스</title>
<script>var tracking = "보이면 안 되는 스크립트";</script></head>
<body>
<nav><a href="/">홈</a> <a href="/politics">정치</a> <a href="/economy">경제</a></nav>
<article>
<h1>탄소중립 기본법 개정안 발의</h1>
<p>기후위기 대응을 위한 탄소중립ㆍ녹색성장 기본법 일부개정법률안이 발의되었다.</p>
<p>개정안은 위원을 위촉할 때 다양한 사회계층의 대표성을 반영하도록 한다.</p>
</article>
<footer>Copyright 2024 국회뉴스. 무단 전재 및 재배포 금지.</footer>
</body></html>"""

BODY = (
    "탄소중립 기본법 개정안 발의\n"
    "기후위기 대응을 위한 탄소중립ㆍ녹색성장 기본법 일부개정법률안이 발의되었다.\n"
    "개정안은 위원을 위촉할 때 다양한 사회계층의 대표성을 반영하도록 한다."
)


def test_main_content_without_navigation_footer_or_scripts() -> None:
    data = ARTICLE.format(charset="utf-8").encode()
    (doc,) = read_html(data, "news.html", "0" * 64)
    assert doc.text == BODY
    assert doc.title == "탄소중립 기본법 개정안 발의"
    assert (doc.format, doc.byte_size, doc.metadata) == ("html", len(data), {"encoding": "utf-8"})


def test_euc_kr_page_is_decoded_as_cp949() -> None:
    data = ARTICLE.format(charset="euc-kr").replace("발의되었다", "발의되었다(똠)").encode("cp949")
    (doc,) = read_html(data, "news.html", "0" * 64)
    assert doc.text == BODY.replace("발의되었다", "발의되었다(똠)")
    assert doc.metadata == {"encoding": "cp949"}


def test_a_fragment_too_short_for_trafilatura_keeps_its_visible_text() -> None:
    (doc,) = read_html("<p>짧은 공지</p><p>내일 <b>휴관</b>합니다.</p>".encode(), "notice.html", "0" * 64)
    assert (doc.text, doc.title) == ("짧은 공지\n내일 휴관합니다.", None)


def test_visible_text_puts_blocks_on_lines_and_hides_scripts() -> None:
    root = markup_root(
        "<html><head><title>t</title><style>p{}</style></head><body><div>하나<br>둘</div>"
        "<ul><li>셋</li><li>넷 <i>다섯</i></li></ul><script>x()</script><!-- 주석 -->끝</body></html>"
    )
    assert visible_text(root) == "하나\n둘\n셋\n넷 다섯\n끝"


def test_declared_charset() -> None:
    assert (
        declared_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-KR">') == "EUC-KR"
    )
    assert declared_charset(b"<?xml version='1.0' encoding='utf-8'?><html/>") == "utf-8"
    assert declared_charset(b"<html><body>none</body></html>") is None


def test_whitespace_only_page_is_an_error() -> None:
    with pytest.raises(ExtractionError, match=r"^blank.html: unreadable HTML"):
        read_html(b"   \n ", "blank.html", "0" * 64)
