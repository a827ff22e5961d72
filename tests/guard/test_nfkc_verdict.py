"""The verdict in NFKC letters: a copied run is a leak once it holds the leak definition's 50
letters (a Hangul syllable one), not 50 jamo; chains, streams and joins all count them."""

from __future__ import annotations

import unicodedata
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.guard.corpus import petitions
from tokenclub.guard.detection.fragments import Fragment
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.hashing import GramHash
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import guard_text, nfkc_starts, normalize

LETTERS = 50
FRESH = "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다. 사람이 정말 많았어요."
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = [i for i, text in enumerate(petitions()) if len(text) >= 600]


def nfkc_letters(text: str) -> int:
    """The leak definition's count: NFKC, case-folded letters and digits."""
    return sum(char.isalnum() for char in unicodedata.normalize("NFKC", text).casefold())


def letter_run(text: str, where: float, count: int) -> str:
    """The characters of `text` that hold `count` letters, from `where` (0 to 1) along it."""
    places = [i for i, char in enumerate(text) if char.isalnum()]
    first = int(where * (len(places) - count))
    return text[places[first] : places[first + count - 1] + 1]


@pytest.fixture(scope="module")
def by_letters(guard_index: GuardIndex) -> LeakScanner:
    return LeakScanner(guard_index, leak_letters=LETTERS)


def _is_common(index: GuardIndex, copy: str) -> bool:
    """Whether the copy holds a gram many petitions share (a notice): common text, never a leak."""
    letters = normalize(copy).letters
    spec = GramHash(index.params.width, index.params.seed)
    if len(letters) < spec.width:
        return False
    keys = spec.at(letters, np.arange(len(letters) - spec.width + 1, dtype=np.int64))
    return index.sketch is not None and bool(index.sketch.common(keys).any())


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("한국어", 3),
        ("한국어 abc", 6),
        ("ﬁ", 2),  # a ligature is its two letters, as NFKC writes it
        ("ㄱㅏ", 2),  # jamo typed one by one count one each: the count errs long
        ("값이 12,000원", 8),
    ],
)
def test_nfkc_starts_counts_the_definitions_letters(text: str, count: int) -> None:
    normalized = normalize(text)
    assert int(nfkc_starts(normalized.letters, normalized.owners).sum()) == count


@SETTINGS
@given(doc=st.sampled_from(LONG), where=st.floats(0, 1))
def test_a_run_of_fifty_nfkc_letters_is_a_leak(
    by_letters: LeakScanner, guard_index: GuardIndex, doc: int, where: float
) -> None:
    text = petitions()[doc]
    copy = letter_run(text, where, LETTERS)
    # a symbol NFKC makes a letter (㉠ → ᄀ) would make the copy longer than asked
    assume(nfkc_letters(copy) == LETTERS and not _is_common(guard_index, copy))
    result = by_letters.scan(FRESH + copy + FRESH)
    assert result.verdict == "leak"
    assert result.spans[0].start <= len(FRESH)


@SETTINGS
@given(doc=st.sampled_from(LONG), where=st.floats(0, 1), count=st.integers(20, 40))
def test_a_korean_run_under_the_nfkc_length_passes_while_guard_letters_stop_it(
    by_letters: LeakScanner, scanner: LeakScanner, guard_index: GuardIndex, doc: int, where: float, count: int
) -> None:
    """20–40 syllables are 50–100 guard letters: the guard's own length stops them, the leak
    definition's does not (with up to 4 guard letters more at each end, 40 syllables stay under 50)."""
    text = petitions()[doc]
    copy = letter_run(text, where, count)
    reply = f"청원인은 “{copy}”라고 썼습니다. {FRESH}"
    assume(len(guard_text(copy)) >= 55 and not _is_common(guard_index, copy))
    assert by_letters.scan(reply).verdict == "pass"
    assert scanner.scan(reply).verdict == "leak"
    assert by_letters.scan(reply, strict=True).verdict == "leak"  # the strict threshold keeps jamo


@SETTINGS
@given(doc=st.sampled_from(LONG), where=st.floats(0, 1))
def test_a_copy_with_one_syllable_changed_is_still_one_run(
    by_letters: LeakScanner, guard_index: GuardIndex, doc: int, where: float
) -> None:
    """70 letters of a petition with its 35th replaced: two chains of about 34 letters each, neither
    a leak alone; their partner and the gap of one syllable make them one run, and a leak. A run
    links chains of `LINK_HITS` grams: a half of 34 Latin letters holds 9 gram starts, and one
    time in five only one of them is stride-aligned, so each half must hold `width + 2 × stride
    − 1` guard letters (a Korean half of 34 syllables holds about 85)."""
    text = petitions()[doc]
    copy = letter_run(text, where, 70)
    places = [i for i, char in enumerate(copy) if char.isalnum()]
    edited = copy[: places[34]] + "뷁" + copy[places[34] + 1 :]
    params = guard_index.params
    shortest = min(len(guard_text(copy[: places[34]])), len(guard_text(copy[places[34] + 1 :])))
    assume(shortest >= params.width + 2 * params.stride - 1 and not _is_common(guard_index, copy))
    result = by_letters.scan(FRESH + edited + FRESH)
    assert result.verdict == "leak"
    assert result.spans[0].start <= len(FRESH) + places[50]  # the client never holds 50 of them


def _long_reply(doc: int, edited: bool = False) -> str:
    """70 letters of a petition between fresh text; `edited`: its 35th letter replaced, so the
    copy is two chains that only their run makes a leak."""
    copy = letter_run(petitions()[doc], 0.1, 70)
    if edited:
        at = [i for i, char in enumerate(copy) if char.isalnum()][34]
        copy = copy[:at] + "뷁" + copy[at + 1 :]
    return FRESH + copy + " 그리고 " + FRESH


@SETTINGS
@given(doc=st.sampled_from(LONG[:40]), cuts=st.lists(st.integers(0, 400), max_size=40), edited=st.booleans())
def test_a_stream_is_cut_where_the_whole_scan_cuts_for_every_chunking(
    by_letters: LeakScanner, guard_index: GuardIndex, doc: int, cuts: list[int], edited: bool
) -> None:
    reply = _long_reply(doc, edited)
    assume(not _is_common(guard_index, reply))
    whole = by_letters.scan(reply)
    assert whole.verdict == "leak"
    stream = by_letters.stream("block")
    bounds = [0, *sorted(c for c in cuts if c <= len(reply)), len(reply)]
    out = "".join(stream.feed(reply[a:b]) for a, b in pairwise(bounds)) + stream.finish()
    assert stream.blocked
    assert stream.cut == whole.spans[0].start
    assert out == reply[: stream.cut]
    assert nfkc_letters(out[len(FRESH) :]) < LETTERS  # no leak's worth reached the client


def _from(text: str, first: int, count: int) -> str:
    places = [i for i, char in enumerate(text) if char.isalnum()]
    return text[places[first] : places[first + count - 1] + 1]


def _pieces(doc: int, size: int, count: int) -> list[str]:
    text = petitions()[doc]
    return [_from(text, 30 + size * i, size) for i in range(count)]


def _asked_in_turn(scanner: LeakScanner, pieces: list[str]) -> list[str]:
    earlier: list[Fragment] = []
    verdicts: list[str] = []
    for piece in pieces:
        result = scanner.scan(f"요청하신 부분입니다: {piece}", earlier=earlier)
        verdicts.append(result.verdict)
        if not result.leaked:
            earlier += result.pieces
    return verdicts


def test_pieces_join_into_a_leak_once_they_hold_fifty_nfkc_letters(
    by_letters: LeakScanner, scanner: LeakScanner, guard_index: GuardIndex
) -> None:
    """Pieces of 15 syllables, one reply each: the guard letters' verdict stops the second
    (its join holds 30 syllables, 75 jamo); the NFKC verdict lets 30 through and stops the
    run before the client holds 60. Each piece's widened span may add a syllable or two, so the
    third (45) may be stopped already. (Shorter pieces hold no aligned gram: coverage counts them.)"""
    tried = 0
    for doc in LONG[:60]:
        pieces = _pieces(doc, 15, 4)
        if _is_common(guard_index, "".join(pieces)) or min(len(guard_text(p)) for p in pieces) < 35:
            continue  # common text, or a piece with digits and Latin too short to hold a gram
        tried += 1
        assert _asked_in_turn(scanner, pieces)[:2] == ["pass", "leak"]
        verdicts = _asked_in_turn(by_letters, pieces)
        assert verdicts[:2] == ["pass", "pass"]
        assert "leak" in verdicts[2:]
    assert tried >= 15


def test_a_fragment_whose_letters_were_not_counted_joins_as_a_leak(
    by_letters: LeakScanner, scanner: LeakScanner, guard_index: GuardIndex
) -> None:
    """A fragment kept before its letters were counted (0) makes any join a leak, as before."""
    doc = next(
        d
        for d in LONG
        if not _is_common(guard_index, "".join(_pieces(d, 15, 2)))
        and min(len(guard_text(p)) for p in _pieces(d, 15, 2)) >= 35
    )
    first, second = _pieces(doc, 15, 2)
    earlier = list(scanner.scan(f"요청하신 부분입니다: {first}", earlier=[]).pieces)
    assert earlier and all(piece.letters == 0 for piece in earlier)
    assert by_letters.scan(f"요청하신 부분입니다: {second}", earlier=earlier).verdict == "leak"
    counted = list(by_letters.scan(f"요청하신 부분입니다: {first}", earlier=[]).pieces)
    assert counted and all(15 <= piece.letters <= 19 for piece in counted)
    assert by_letters.scan(f"요청하신 부분입니다: {second}", earlier=counted).verdict == "pass"


def test_an_index_without_nfkc_letters_scans_as_before(guard_index: GuardIndex) -> None:
    """`leak_letters` 0 is the guard letters' verdict: the same spans as a scanner without it."""
    reply = _long_reply(LONG[0]) + petitions()[LONG[1]][:200]
    assert LeakScanner(guard_index, leak_letters=0).scan(reply) == LeakScanner(guard_index).scan(reply)
