"""PII scrubbing: Korean identifiers, contact details and network addresses become placeholders.

Each candidate is found by a pattern and then validated the way the issuer defines the number
(birth date and checksum, Luhn, the business-number checksum, real area codes), because a
corpus of reports and bills is full of numbers that look like PII and are not: dates
(2024-01-02, 20240102), ISBNs, prices (1,234,000원), article and bill numbers, years. A
candidate that fails validation is left as written.

Resident registration numbers (주민등록번호, ``YYMMDD-GNNNNNN``) and foreigner registration
numbers (외국인등록번호, same layout, G = 5-8) are both written ``<RRN>``. G fixes the century
(1/2/5/6: 1900s, 3/4/7/8: 2000s; 9/0, the 1800s, no longer occur) and the birth date must be a
real day no later than today. The last digit is a checksum (weights 2…9,2…5; RRN:
``(11 - sum % 11) % 10``, foreigner: ``(13 - sum % 11) % 10``) for numbers issued before
2020-10-05; since then the six digits after G are random. The issue date is not in the
number, so the checksum is waived for birth dates from 2020-10-05 on and required before:
numbers re-issued since 2020 to people born earlier (rare) are missed, in exchange for not
reading every 13-digit string as an RRN. A dashed number masked after G (``900101-1******``)
still reveals the birth date and sex and is scrubbed too.

Bank account numbers have no common layout or checksum, so they are scrubbed only within a
few characters after a bank name or 계좌/통장. Scrubbing repeats until nothing changes, so
scrubbed text scrubs to itself.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from datetime import date

import pyarrow as pa

from tokenclub.curate.step import REJECT, Step, set_column

_RRN_NO_CHECKSUM_FROM = date(2020, 10, 5)
_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_BRN_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3, 5)
_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}

# ASCII digits only (re.ASCII): a scrubber must not read Arabic-Indic or full-width digits.
_A = re.ASCII
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", _A)
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:.])(?=[0-9A-Fa-f:]*\d)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:.])", _A
)
_RRN = re.compile(r"(?<![\d-])(\d\d)(\d\d)(\d\d)([- ]?)([1-8])(\d{6}|\*{6})(?![\d*-])", _A)
_CARD = re.compile(
    r"(?<![\d-])(?:\d{4}([- ])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([- ])\d{6}\2\d{5}|\d{15,16})(?![\d-])",
    _A,
)
_BRN = re.compile(r"(?<![\d-])\d{3}-\d\d-\d{5}(?![\d-])", _A)
_REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산"
_DRIVER_LICENSE = re.compile(
    rf"(?<![\d-])(?:(?:1[1-9]|2[0-6]|28)-|(?:{_REGIONS}) ?-?)\d\d-\d{{6}}-\d\d(?![\d-])", _A
)
_AREA = "(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)"
_PHONE = re.compile(
    r"(?<![\d+-])(?:"
    # mobile: 010-1234-5678, 010 1234 5678, 01012345678, +82 10-1234-5678
    r"(?:\+82[ -]?(?:\(0\)|0)?|0)1(?P<carrier>[016789])(?P<sep>[ .-]?)(?P<exchange>\d{3,4})(?P=sep)\d{4}"
    # landline: 02-123-4567, (031) 123-4567, 02)6788-5533, 070-1234-5678
    rf"|(?:\+82[ -]?(?:\(0\)|0)?|\(0|0){_AREA}\)?[ .-]?[2-9]\d{{2,3}}[ .-]\d{{4}}"
    # representative numbers: 1588-1234
    r"|(?P<rep>1[568]\d\d)-(?P<line>\d{4})(?!\s?년)"
    r")(?![\d-])",
    _A,
)
_PASSPORT = re.compile(r"(?<![A-Za-z0-9])[MSRGD](?:\d{8}|\d{3}[A-Z]\d{4})(?![A-Za-z0-9])", _A)
_BANKS = (
    "카카오뱅크|토스뱅크|케이뱅크|새마을금고|우체국|신협|수협|국민|신한|우리|하나|농협|기업|SC제일|씨티|KB|NH|IBK"
    "|(?:부산|대구|광주|제주|경남|전북|산업|수출입)은행"
)
_ACCOUNT = re.compile(
    rf"(?:(?:{_BANKS})(?:은행)?|계좌|통장)[^\d\n<>]{{0,20}}?"
    r"(?<![\d-])(?P<number>\d{2,6}(?:-\d{2,7}){1,4}|\d{10,14})(?![\d-])",
    _A,
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)", _A)


def _rrn(match: re.Match[str]) -> bool:
    yy, mm, dd, separator, gender, tail = match.groups()
    try:
        born = date(_CENTURY[gender] + int(yy), int(mm), int(dd))
    except ValueError:
        return False
    if born > date.today():
        return False
    if tail == "******":
        return separator == "-"
    if born >= _RRN_NO_CHECKSUM_FROM:
        return True
    digits = [int(c) for c in yy + mm + dd + gender + tail]
    total = sum(d * w for d, w in zip(digits, _RRN_WEIGHTS, strict=False))
    base = 13 if gender in "5678" else 11
    return (base - total % 11) % 10 == digits[12]


def _luhn(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    """Luhn plus an issuer prefix: Amex/JCB/Diners 3, Visa 4, Mastercard 5 and 2221-2720,
    UnionPay/Discover 6, Korean domestic 9; tables of years (2019 2020 2021 2022) fail here."""
    number = match.group().replace("-", "").replace(" ", "")
    if not 13 <= len(number) <= 19 or not _luhn(number):
        return False
    return number[0] in "34569" or 2221 <= int(number[:4]) <= 2720


def _brn(match: re.Match[str]) -> bool:
    digits = [int(c) for c in match.group() if c.isdigit()]
    total = sum(d * w for d, w in zip(digits, _BRN_WEIGHTS, strict=False)) + digits[8] * 5 // 10
    return (10 - total % 10) % 10 == digits[9]


def _phone(match: re.Match[str]) -> bool:
    if match.group("rep") is not None:
        # 1600-1700 is a span of years, not a call centre; 1588-1234 runs backwards.
        return not int(match.group("rep")) < int(match.group("line")) <= 2099
    if match.group("carrier") == "0":
        exchange = match.group("exchange")
        return len(exchange) == 4 and exchange[0] != "0"
    return True


def _ipv4(match: re.Match[str]) -> bool:
    """Octets up to 255 without leading zeros; 1.2.3.4-style section numbers are not addresses."""
    octets = match.group().split(".")
    if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
        return False
    return any(int(o) >= 10 for o in octets)


def _ipv6(match: re.Match[str]) -> bool:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return False
    return True


def _account(match: re.Match[str]) -> bool:
    number: str = match.group("number")
    return 10 <= sum(c.isdigit() for c in number) <= 14


def _always(match: re.Match[str]) -> bool:
    return True


_Validator = Callable[[re.Match[str]], bool]
_Rule = tuple[str, re.Pattern[str], _Validator, str | int, str]
# Most specific first: an e-mail's local part may hold digits, and a card number or an RRN must
# be taken whole before its pieces can pass for phone or account numbers. The last field lists
# characters of which every match holds one (empty: no such shortcut): a text without any of
# them is not scanned for that rule.
_RULES: tuple[_Rule, ...] = (
    ("EMAIL", _EMAIL, _always, 0, "@"),
    ("IP", _IPV6, _ipv6, 0, ":"),
    ("RRN", _RRN, _rrn, 0, ""),
    ("CARD", _CARD, _card, 0, ""),
    ("BRN", _BRN, _brn, 0, "-"),
    ("DRIVER_LICENSE", _DRIVER_LICENSE, _always, 0, "-"),
    ("PHONE", _PHONE, _phone, 0, ""),
    ("PASSPORT", _PASSPORT, _always, 0, "MSRGD"),
    ("ACCOUNT", _ACCOUNT, _account, "number", ""),
    ("IP", _IPV4, _ipv4, 0, "."),
)
_CANDIDATE = re.compile("[0-9@]")

# Every match of every rule holds an ASCII digit or "@" (an anchor). Apart from an account
# number's bank name and the few characters after it, and a driver's licence's region, a match
# lies inside one run of `_RUN_CHARS`, so the rules only need to see each run that holds an
# anchor, with a little context on both sides (`_windows`); the rest of a document cannot change.
_RUN_CHARS = r"A-Za-z0-9_.%+\-@:()* "
_ANCHORED_RUN = re.compile(rf"[0-9@][{_RUN_CHARS}]*+", _A)
# Characters some rule's look-behind tests for: a window never starts right after one.
_LOOK_BEHIND = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.%+-:")
_ACCOUNT_LEAD = re.compile(rf"(?:(?:{_BANKS})(?:은행)?|계좌|통장)", _A)
_DIGIT = re.compile("[0-9]", _A)
# 은행, the filler, the number's first digit, and room for a bank name overlapping the one found
# ("IBKB": KB starts inside IBK, and finditer reports only IBK)
_ACCOUNT_REACH = 2 + 20 + 1 + 7
_LEAD_LONGEST = 7  # 카카오뱅크, 수출입은행; a bank name with 은행 after it
_REGION_REACH = 2  # a licence's region name before its run
_LOOK_AHEAD = 2  # "1588-1234" followed by " 년" is a year span, not a number
_MERGE_GAP = 32  # windows closer than this are scanned as one
_SEPARATOR = "<\x00>"  # no rule reads across "<" or ">", so windows joined by it stay apart


def _window_start(text: str, start: int) -> int:
    """Move a window's start left until no look-behind at it could read a character before it."""
    while start > 0 and text[start - 1] in _LOOK_BEHIND:
        start -= 1
    return start


def _windows(text: str) -> list[tuple[int, int]]:
    """Disjoint, sorted spans of `text` outside which no rule can match, at any round of scrubbing.

    Each run of `_RUN_CHARS` that holds an anchor is found from both ends (its first anchor to
    its end in `text`, its last anchor to its start in the reversed text: one scan each, no
    walking back), then widened by a licence region on the left, by what a look-ahead reads on
    the right, and back to a bank name or 계좌/통장 that an account number's rule starts from.
    A start never falls right after a character some look-behind tests. Scrubbing inserts only
    placeholders, which hold no anchor and end runs, so later rounds match inside the same spans.
    """
    size = len(text)
    ends = [match.end() for match in _ANCHORED_RUN.finditer(text)]
    starts = [size - match.end() for match in _ANCHORED_RUN.finditer(text[::-1])]
    spans: list[tuple[int, int]] = []
    for start, end in zip(reversed(starts), ends, strict=True):
        spans.append((_window_start(text, max(start - _REGION_REACH, 0)), min(end + _LOOK_AHEAD, size)))
        # An account number's bank name ends at most _ACCOUNT_REACH before the number's first
        # digit, which is at or after the run's start; one inside the run is in the window.
        for lead in _ACCOUNT_LEAD.finditer(
            text, max(start - _ACCOUNT_REACH - _LEAD_LONGEST, 0), start + _LEAD_LONGEST
        ):
            digit = _DIGIT.search(text, lead.end(), lead.end() + _ACCOUNT_REACH)
            if digit is not None:
                spans.append((_window_start(text, lead.start()), digit.end()))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + _MERGE_GAP:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _substitute(text: str, rule: _Rule, counts: dict[str, int]) -> str:
    """Replace the `group` of every valid match of `pattern` with ``<kind>``."""
    kind, pattern, valid, group, needs = rule
    if needs and not any(char in text for char in needs):
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group()
        if not valid(match):
            return whole
        counts[kind] = counts.get(kind, 0) + 1
        start, end = (i - match.start() for i in match.span(group))
        return f"{whole[:start]}<{kind}>{whole[end:]}"

    return pattern.sub(replace, text)


def apply_rules(text: str, counts: dict[str, int]) -> str:
    """Every rule in order over the whole of `text`, repeated until nothing changes.

    This defines the scrubbed text; `scrub_pii` gets the same result by running it on the
    document's windows only.
    """
    while True:
        scrubbed = text
        for rule in _RULES:
            scrubbed = _substitute(scrubbed, rule, counts)
        if scrubbed == text:
            return text
        text = scrubbed


def scrub_pii(text: str) -> tuple[str, dict[str, int]]:
    """The text with every recognised identifier replaced by ``<TYPE>``, and counts per type.

    The rules run once over the document's windows (`_windows`) joined by a separator that no
    rule reads across, not over the whole text: in Korean prose the windows are a small share
    of the characters, and the digits, dates and e-mail addresses in it are all they see.
    """
    counts: dict[str, int] = {}
    if not _CANDIDATE.search(text):
        return text, counts
    windows = _windows(text)
    if "\x00" in text:
        pieces = [apply_rules(text[start:end], counts) for start, end in windows]
    else:
        pieces = apply_rules(_SEPARATOR.join(text[start:end] for start, end in windows), counts).split(
            _SEPARATOR
        )
    if not counts:
        return text, counts
    out: list[str] = []
    last = 0
    for (start, end), piece in zip(windows, pieces, strict=True):
        out += (text[last:start], piece)
        last = end
    out.append(text[last:])
    return "".join(out), counts


class PiiStep(Step):
    """Scrubs the text of live documents and records what it replaced in a JSON `pii` column."""

    name = "pii"
    writes = ("text", "pii")

    def process(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        reasons = batch.column(REJECT).to_pylist()
        out_texts: list[str | None] = []
        out_pii: list[str | None] = []
        for text, reason in zip(texts, reasons, strict=True):
            if reason is not None:
                out_texts.append(text)
                out_pii.append(None)
                continue
            scrubbed, counts = scrub_pii(text)
            out_texts.append(scrubbed)
            out_pii.append(json.dumps(counts, sort_keys=True, ensure_ascii=False))
        batch = set_column(batch, "text", out_texts, pa.string())
        return set_column(batch, "pii", out_pii, pa.string())
