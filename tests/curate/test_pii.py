"""PII scrubbing: positives and look-alikes per type, properties, real petitions, the step."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections.abc import Callable
from datetime import date, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CORPORA
from tokenclub.curate.normalize import normalize_text
from tokenclub.curate.pii import _RULES, PiiStep, scrub_pii

POSITIVES = {
    "RRN": [
        "800101-1234560",
        "901231-2345675",
        "030228-4123455",
        "000229-3456781",  # 2000 was a leap year
        "8001011234560",
        "800101 1234560",
        "850315-5123450",  # foreigner registration number, its own checksum
        "201015-3987654",  # born after 2020-10-05: random tail, no checksum
        "900101-1******",  # masked, still birth date and sex
    ],
    "PHONE": [
        "010-1234-5678",
        "010 1234 5678",
        "010.1234.5678",
        "01012345678",
        "+82 10-1234-5678",
        "+82-10-1234-5678",
        "+821012345678",
        "+82 (0)10-1234-5678",
        "011-234-5678",
        "016-2345-6789",
        "02-234-5678",
        "02-2345-6789",
        "(02) 2345-6789",
        "02)6788-5533",
        "031-828-4782",
        "044-201-3129",
        "064-710-2345",
        "070-7123-4567",
        "1588-1234",
        "1644-8000",
    ],
    "EMAIL": ["hong.gildong@example.co.kr", "user+tag@gmail.com", "a_b-c@sub.domain.org", "abc123@naver.com"],
    "CARD": [
        "4111-1111-1111-1111",
        "4111 1111 1111 1111",
        "4111111111111111",
        "5200123456789012",
        "9400123456789012",
        "378282246310005",
        "3782-822463-10005",
    ],
    "BRN": ["220-81-62517", "104-81-00000"],
    "PASSPORT": ["M12345678", "S98765432", "M123A4567", "D00112233"],
    "DRIVER_LICENSE": ["11-12-345678-90", "28-21-123456-78", "서울 12-345678-90", "부산12-345678-90"],
    "IP": ["192.168.0.1", "211.234.56.78", "2001:db8::1", "fe80::1ff:fe23:4567:890a"],
}

ACCOUNTS = [
    ("국민은행 123456-01-123456 홍길동", "국민은행 <ACCOUNT> 홍길동"),
    ("신한 110-123-456789", "신한 <ACCOUNT>"),
    ("입금 계좌번호: 1002-123-456789 (우리)", "입금 계좌번호: <ACCOUNT> (우리)"),
    ("카카오뱅크 3333-01-1234567로 보내 주세요", "카카오뱅크 <ACCOUNT>로 보내 주세요"),
    ("농협 3021234567890", "농협 <ACCOUNT>"),
    ("우리은행 계좌 1002123456789", "우리은행 계좌 <ACCOUNT>"),
    ("토스뱅크(예금주 김철수) 1000-1234-5678", "토스뱅크(예금주 김철수) <ACCOUNT>"),
]

NEGATIVES = [
    # dates, years, prices, legal and bill numbers, ISBNs
    "2024-01-02",
    "2024.1.2",
    "2024. 1. 2.",
    "20240102",
    "2023년 11월 9일",
    "1,234,000원",
    "39,000,000원",
    "제12조의3",
    "제15조제5항",
    "의안번호 2125318",
    "의안번호 제2125318호",
    "ISBN 978-89-349-7246-4",
    "ISBN 9788934972464",
    "12.5%",
    "14:30",
    "1588년",
    # RRN look-alikes: bad checksum, impossible date, future, 1800s, corporate number
    "800101-1234567",
    "801301-1234560",
    "800230-1234560",
    "990229-1234560",
    "300101-3123456",
    "800101-9234567",
    "110111-0012345",
    "9001011******",
    # phone look-alikes
    "010-123-4567",
    "010-0123-4567",
    "010-1234-567",
    "0101234567",
    "023-234-5678",
    "099-234-5678",
    "02-123-4567",
    "02-0123-4567",
    "1600-1700년대",
    "1500-1600",
    "11204-0470-7556",
    # e-mail look-alikes
    "@username",
    "user@localhost",
    "3@4.5",
    # card look-alikes: Luhn fails, no issuer prefix, a row of years
    "4111-1111-1111-1112",
    "1234567890123452",
    "2019 2020 2021 2022",
    # business number with a bad checksum
    "123-45-67890",
    "220-81-62518",
    # passport look-alikes
    "m12345678",
    "M1234567",
    "AM12345678",
    "M123456789",
    "X12345678",
    # driver's licence look-alikes
    "27-12-345678-90",
    "11-12-34567-90",
    "10-12-345678-90",
    # accounts need a bank or 계좌 nearby and 10-14 digits
    "110-123-456789",
    "국민 여러분 2019-05-01",
    "국민 1,234,567명",
    "계좌 12-34",
    "하나 123-456",
    # IP look-alikes: section numbers, octets over 255, leading zeros, times, verses
    "1.2.3.4",
    "256.1.1.1",
    "192.168.01.1",
    "12:30:45",
    "요한복음 3:16",
    "v1.2.3",
]


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, values in POSITIVES.items() for v in values])
def test_positive(kind: str, value: str) -> None:
    assert scrub_pii(f"번호는 {value}입니다.") == (f"번호는 <{kind}>입니다.", {kind: 1})


@pytest.mark.parametrize(("text", "expected"), ACCOUNTS)
def test_account_near_a_bank(text: str, expected: str) -> None:
    assert scrub_pii(text) == (expected, {"ACCOUNT": 1})


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_survive(text: str) -> None:
    assert scrub_pii(f"참고: {text} 끝") == (f"참고: {text} 끝", {})


def test_mixed_text_counts_per_type() -> None:
    text = (
        "신청인 홍길동(800101-1234560), 연락처 010-1234-5678 또는 02)6788-5533, "
        "메일 hong@example.com. 2024-01-02 접수, 의안번호 2125318, 수수료 1,234,000원. "
        "환불은 국민은행 123456-01-123456으로, 카드 4111-1111-1111-1111 결제 취소. 접속 IP 211.234.56.78"
    )
    assert scrub_pii(text) == (
        "신청인 홍길동(<RRN>), 연락처 <PHONE> 또는 <PHONE>, "
        "메일 <EMAIL>. 2024-01-02 접수, 의안번호 2125318, 수수료 1,234,000원. "
        "환불은 국민은행 <ACCOUNT>으로, 카드 <CARD> 결제 취소. 접속 IP <IP>",
        {"RRN": 1, "PHONE": 2, "EMAIL": 1, "ACCOUNT": 1, "CARD": 1, "IP": 1},
    )


def test_second_account_after_a_placeholder_is_scrubbed_in_one_call() -> None:
    text = "계좌 110-123-456789, 110-987-654321"
    assert scrub_pii(text) == ("계좌 <ACCOUNT>, 110-987-654321", {"ACCOUNT": 1})


def _rrn(born: date, gender: str, tail: str) -> str:
    front = born.strftime("%y%m%d")
    digits = [int(c) for c in front + gender + tail]
    total = sum(d * w for d, w in zip(digits, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=False))
    return f"{front}-{gender}{tail}{(11 - total % 11) % 10}"


def _luhn_complete(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


KOREAN_FILLER = st.text(alphabet="가나다라마 바사아자차카타파하.,", max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    born=st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 10, 4)),
    tail=st.from_regex(r"\A[0-9]{5}\Z"),
    before=KOREAN_FILLER,
    after=KOREAN_FILLER,
)
def test_every_valid_rrn_is_found(born: date, tail: str, before: str, after: str) -> None:
    gender = ("1", "2") if born.year < 2000 else ("3", "4")
    for g in gender:
        text = f"{before} {_rrn(born, g, tail)} {after}"
        assert scrub_pii(text) == (f"{before} <RRN> {after}", {"RRN": 1})


@settings(max_examples=200, deadline=None)
@given(middle=st.integers(1000, 9999), last=st.integers(0, 9999), style=st.sampled_from(["-", " ", ""]))
def test_every_mobile_number_is_found(middle: int, last: int, style: str) -> None:
    number = f"010{style}{middle}{style}{last:04d}"
    assert scrub_pii(f"연락처 {number}로") == ("연락처 <PHONE>로", {"PHONE": 1})


@settings(max_examples=200, deadline=None)
@given(body=st.from_regex(r"\A4[0-9]{14}\Z"))
def test_every_visa_number_is_found(body: str) -> None:
    number = _luhn_complete(body)
    grouped = "-".join(number[i : i + 4] for i in range(0, 16, 4))
    assert scrub_pii(f"카드 {grouped}") == ("카드 <CARD>", {"CARD": 1})


def test_rrn_checksum_is_waived_only_for_births_from_october_2020() -> None:
    assert scrub_pii("201005-3000000")[1] == {"RRN": 1}
    assert scrub_pii("201004-3000000")[1] == {}
    tomorrow = (date.today() + timedelta(days=1)).strftime("%y%m%d")
    assert scrub_pii(f"{tomorrow}-3000000")[1] == {}


PII_ALPHABET = st.sampled_from(
    list("0123456789")
    + list("-. ()+@:*")
    + list("abcdefMSRGDx")
    + ["\n", "가", "은행", "계좌", "국민", "서울"]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(PII_ALPHABET, st.sampled_from([v for vs in POSITIVES.values() for v in vs]))))
def test_scrubbing_is_idempotent(parts: list[str]) -> None:
    scrubbed, _ = scrub_pii("".join(parts))
    assert scrub_pii(scrubbed) == (scrubbed, {})


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="0123456789@")))
def test_text_without_digits_or_at_is_unchanged(text: str) -> None:
    assert scrub_pii(text) == (text, {})


def _whole_text(text: str) -> tuple[str, dict[str, int]]:
    """The reference: every rule over the whole document until nothing changes (no windows, no
    shortcuts), as scrubbing was defined before it ran on windows."""
    counts: dict[str, int] = {}

    def substitute(
        text: str, kind: str, pattern: re.Pattern[str], valid: Callable[..., bool], group: str | int
    ) -> str:
        def replace(match: re.Match[str]) -> str:
            if not valid(match):
                return match.group()
            counts[kind] = counts.get(kind, 0) + 1
            start, end = (i - match.start() for i in match.span(group))
            return f"{match.group()[:start]}<{kind}>{match.group()[end:]}"

        return pattern.sub(replace, text)

    while True:
        scrubbed = text
        for kind, pattern, valid, group, _ in _RULES:
            scrubbed = substitute(scrubbed, kind, pattern, valid, group)
        if scrubbed == text:
            return text, counts
        text = scrubbed


EDGE_PIECES = st.sampled_from(
    [
        *"0123456789-. ()+@:*<>_%\n\x00xMSRGDAfK년가",
        *("은행", "계좌", "통장", "국민", "카카오뱅크", "IBK", "KB", "SC제일", "서울", "부산", "2019년"),
        *(" " * 21, "", "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허"),
    ]
)


@settings(max_examples=1000, deadline=None)
@given(parts=st.lists(st.one_of(EDGE_PIECES, st.sampled_from([v for vs in POSITIVES.values() for v in vs]))))
def test_windows_scrub_like_the_whole_text(parts: list[str]) -> None:
    text = "".join(parts)
    assert scrub_pii(text) == _whole_text(text)


@pytest.mark.parametrize(
    ("text"),
    [
        f"{lead}{gap}{number}"
        for lead in ("IBKB", "국민은행", "xKB")
        for gap in ("", " " * 20, "가" * 21)
        for number in ("123456-01-123456", "1002123456789")
    ],
)
def test_account_numbers_far_from_their_bank(text: str) -> None:
    assert scrub_pii(text) == _whole_text(text)


def test_open_corpus_scrubs_like_the_whole_text() -> None:
    """Petitions and NSMC reviews, normalized as in the pipeline: same text, same counts."""
    if not (CORPORA / "petitions").exists():
        pytest.skip("petitions corpus is not here")
    texts = [
        normalize_text(json.loads(line)["content"])
        for path in sorted((CORPORA / "petitions").glob("*.jsonl"))
        for line in path.open(encoding="utf-8")
    ]
    reviews = CORPORA / "nsmc" / "reviews.jsonl.gz"
    if reviews.exists():
        with gzip.open(reviews, "rt", encoding="utf-8") as fh:
            texts += [normalize_text(json.loads(line)["review"]) for line in itertools.islice(fh, 20_000)]
    differ = [text[:80] for text in texts if scrub_pii(text) != _whole_text(text)]
    assert differ == []


def test_real_petitions() -> None:
    """Normalized first, as in the pipeline: one number is written in full-width digits."""
    folder = CORPORA / "petitions"
    if not folder.exists():
        pytest.skip("petitions corpus is not here")
    totals: dict[str, int] = {}
    leftovers = []
    mobile = re.compile(r"01[016789]-\d{3,4}-\d{4}")
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.open():
            scrubbed, counts = scrub_pii(normalize_text(json.loads(line)["content"]))
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + count
            leftovers += mobile.findall(scrubbed)
    assert totals == {"PHONE": 28, "EMAIL": 12}
    assert leftovers == []


def test_step_writes_text_and_pii_for_live_rows() -> None:
    batch = pa.table(
        {
            "doc_id": ["a", "b", "c"],
            "text": ["전화 010-1234-5678, 메일 a@b.com, 010 9876 5432", "2024-01-02 회의", "010-1234-5678"],
            "reject_reason": [None, None, "quality:too_short"],
        }
    )
    out = PiiStep().process(batch)
    assert out.column("text").to_pylist() == [
        "전화 <PHONE>, 메일 <EMAIL>, <PHONE>",
        "2024-01-02 회의",
        "010-1234-5678",
    ]
    assert out.column("pii").to_pylist() == ['{"EMAIL": 1, "PHONE": 2}', "{}", None]
    assert out.column("reject_reason").to_pylist() == [None, None, "quality:too_short"]
    assert PiiStep.writes == ("text", "pii")


def test_national_assembly_pdfs_keep_their_numbers() -> None:
    pdfium = pytest.importorskip("pypdfium2")
    folder = CORPORA / "samples" / "pdf"
    if not folder.exists():
        pytest.skip("PDF samples are not here")
    results = []
    for name in (
        "national-assembly-bill-2125318-original.pdf",
        "national-assembly-bill-2125318-review-report.pdf",
    ):
        document = pdfium.PdfDocument(folder / name)
        text = normalize_text("\n".join(page.get_textpage().get_text_range() for page in document))
        document.close()
        results.append((text, *scrub_pii(text)))
    (bill, bill_scrubbed, bill_counts), (review, review_scrubbed, review_counts) = results
    assert bill_counts == {}
    assert bill_scrubbed == bill
    # the committee's contact number is the only PII; bill number, dates and figures stay
    assert review_counts == {"PHONE": 1}
    assert review_scrubbed == review.replace("02)6788-5533", "<PHONE>")
    assert "의안번호 제2125318호" in review_scrubbed
    assert "6,835개(국가통계포털, 2021년 기준)" in review_scrubbed
