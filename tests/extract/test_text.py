"""Plain text and Markdown: encodings, NFC, binary refusal, and a 10 MB line."""

from __future__ import annotations

import codecs
import hashlib
import os
import unicodedata

import pytest

from tests.extract.helpers import corpus
from tokenclub.errors import ExtractionError
from tokenclub.extract.text import codec_name, decode_repairing, decode_text, read_text

KOREAN = "대한민국 헌법 제1조 ① 대한민국은 민주공화국이다.\n똠방각하 햏자 쌰라라 - CP949에만 있는 음절.\n"


def test_utf8_with_and_without_bom() -> None:
    assert decode_text(KOREAN.encode("utf-8"), "a.txt") == (KOREAN, "utf-8")
    assert decode_text(codecs.BOM_UTF8 + KOREAN.encode("utf-8"), "a.txt") == (KOREAN, "utf-8")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_and_utf32_by_bom(codec: str) -> None:
    bom = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
    }
    text, used = decode_text(bom[codec] + KOREAN.encode(codec), "a.txt")
    assert text == KOREAN
    assert used == codec[:6]


def test_cp949_only_syllables_decode() -> None:
    data = KOREAN.encode("cp949")
    with pytest.raises(UnicodeDecodeError):
        data.decode("euc-kr")  # 똠, 햏 and 쌰 are outside EUC-KR: only CP949 reads this file
    assert decode_text(data, "a.txt") == (KOREAN, "cp949")


def test_real_headlines_in_cp949_round_trip() -> None:
    lines = corpus("korean-hate-speech", "news_title", "dev.news_title.txt").read_text("utf-8").splitlines()
    text = "\n".join(line for line in lines if _cp949_encodable(line)) + "\n"
    assert len(text.splitlines()) == 468
    docs = read_text(text.encode("cp949"), "titles.txt", "0" * 64)
    # NFC maps the compatibility ideograph U+F90A (金 read 김), which two headlines use,
    # to U+91D1: the only change.
    assert text.count("\uf90a") == 2
    assert [(d.text, d.metadata) for d in docs] == [(text.replace("\uf90a", "金"), {"encoding": "cp949"})]


def _cp949_encodable(line: str) -> bool:
    try:
        line.encode("cp949")
    except UnicodeEncodeError:
        return False
    return True


def test_euc_kr_labels_map_to_cp949() -> None:
    assert codec_name("euc-kr") == "cp949"
    assert codec_name("ks_c_5601-1987") == "cp949"
    assert codec_name("EUCKR") == "cp949"
    assert codec_name("utf-8") == "utf-8"
    assert codec_name("no-such-charset") is None


def test_declared_charset_is_used_before_guessing() -> None:
    assert decode_text("짧은 글".encode("cp949"), "a.html", "euc-kr") == ("짧은 글", "cp949")


def test_result_is_nfc_never_nfkc() -> None:
    decomposed = unicodedata.normalize("NFD", "한국어 문서")  # as macOS writes file contents
    assert len(decomposed) == 14
    compatibility = "㈜ ① ｆｕｌｌ ㎏"
    text, _ = decode_text((decomposed + compatibility).encode("utf-8"), "a.txt")
    assert text == "한국어 문서" + compatibility


def test_binary_junk_is_not_text() -> None:
    junk = hashlib.sha256(b"seed").digest() * 64
    with pytest.raises(
        ExtractionError, match=r"^junk.bin: not text: binary data \(\d+ control bytes in 2048\)$"
    ):
        decode_text(junk, "junk.bin")


def test_truncated_or_damaged_utf8_is_a_clear_failure_not_mojibake() -> None:
    data = "가나다라마바사".encode()
    with pytest.raises(ExtractionError, match=r"^cut.txt: not text: invalid UTF-8 at byte 18$"):
        decode_text(data[:-1], "cut.txt")
    half = ("한국어 문장입니다. " * 500).encode()
    damaged = half + b"\xff" + half
    with pytest.raises(ExtractionError, match=rf"invalid UTF-8 at byte {len(half)}$"):
        decode_text(damaged, "damaged.txt")


def test_read_text_document() -> None:
    data = KOREAN.encode("utf-8")
    (doc,) = read_text(data, "law.txt", hashlib.sha256(data).hexdigest())
    assert (doc.source, doc.format, doc.title, doc.byte_size) == ("law.txt", "text", None, len(data))
    assert doc.sha256 == hashlib.sha256(data).hexdigest()


def test_markdown_title_is_the_first_h1() -> None:
    data = "서문\r\n\r\n# 탄소중립 기본법 해설 #\r\n\r\n## 제1장\r\n본문".encode()
    (doc,) = read_text(data, "guide.md", "0" * 64, markdown=True)
    assert (doc.format, doc.title) == ("markdown", "탄소중립 기본법 해설")


def test_a_10_mb_single_line_is_one_document() -> None:
    line = ("가나다라마바사아자차카타파하 " * 700_000)[: 10 * 1024 * 1024 // 3]
    data = line.encode("utf-8")
    assert len(data) > 10_000_000
    (doc,) = read_text(data, "line.txt", "0" * 64)
    assert doc.text == line
    assert "\n" not in doc.text


def test_random_bytes_without_controls_never_escape_as_other_errors() -> None:
    data = bytes(b for b in os.urandom(4096) if b >= 0x80)
    try:
        decode_text(data, "r.txt")
    except ExtractionError as err:
        assert err.reason.startswith("not text")


PROSE = "대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다. " * 20


def damage(good: bytes) -> bytes:
    """Six bad bytes between characters: invalid bytes, stray continuations, a cut-off sequence."""
    cut = [good.index(b" ", n) for n in (100, 400)]
    return good[: cut[0]] + b"\xff\xfe" + good[cut[0] : cut[1]] + b"\x80\x80" + good[cut[1] :] + b"\xc3\xc3"


def test_a_few_bad_bytes_are_replaced_and_counted() -> None:
    damaged = damage(PROSE.encode())
    text, codec, bad = decode_repairing(damaged, "six.txt", 0.01)
    assert (codec, bad) == ("utf-8", 6)
    assert text.count("\ufffd") == 6
    assert text.replace("\ufffd", "") == PROSE
    (document,) = read_text(damaged, "six.txt", "0" * 64)
    assert document.metadata == {"encoding": "utf-8", "bad_bytes": "6"}


def test_damaged_cp949_is_repaired_as_cp949() -> None:
    damaged = PROSE[:40].encode("cp949") + b"\xff\xff" + PROSE[40:].encode("cp949")
    text, codec, bad = decode_repairing(damaged, "old.txt", 0.01)
    assert (codec, bad) == ("cp949", 2)
    assert text.replace("\ufffd", "") == PROSE


def test_too_broken_is_refused_with_the_threshold_named() -> None:
    damaged = damage(PROSE.encode())
    with pytest.raises(
        ExtractionError,
        match=r"^six.txt: not text: damaged Korean text; 6 of \d+ bytes are not utf-8, more than the 0.10%",
    ):
        decode_repairing(damaged, "six.txt", 0.001)
    assert decode_repairing(PROSE.encode(), "clean.txt", 0.0) == (PROSE, "utf-8", 0)
