"""The scanner on real text: copies of contributed text are caught, disguised or streamed; the rest passes."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.guard.conftest import partner_of
from tests.guard.corpus import fresh_texts, petitions
from tests.guard.disguise import DISGUISES
from tokenclub.guard.detection.scanner import (
    REDACTION,
    LeakScanner,
    Policy,
    ScanResult,
    StreamScanner,
    feed_both,
    read_both,
)
from tokenclub.guard.hashing import GramHash
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import Normalized, guard_text, normalize

DOC = 10
SOURCE = petitions()[DOC]
SPAN = SOURCE[120:180]  # 60 characters, well over 50 guard letters
INTRO = "네, 말씀하신 청원의 핵심을 정리해 드리겠습니다. "
OUTRO = " 이상이 주요 내용이며, 더 궁금한 점이 있으면 말씀해 주세요."
REPLY = INTRO + SPAN + OUTRO
FRESH = "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다. 사람이 정말 많았어요."
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _common(index: GuardIndex, letters: Normalized, first: int, need: int) -> bool:
    """Whether a copy of the characters that hold letters `first` to `first + need - 1` holds a
    gram that many petitions share (the board's notices): common text, not secret, so not a leak
    (docs/leak-guard.md). A syllable is several letters, so the copy's first and last characters
    may bring letters beyond the run, and with them a common gram (a petition's last gram, of
    "감사합니다", once)."""
    start = int(np.searchsorted(letters.owners, letters.owners[first], side="left"))
    end = int(np.searchsorted(letters.owners, letters.owners[first + need - 1], side="right"))
    spec = GramHash(index.params.width, index.params.seed)
    grams = spec.at(letters.letters, np.arange(start, end - spec.width + 1, dtype=np.int64))
    return index.sketch is not None and bool(index.sketch.common(grams).any())


def letters_between(text: str, start: int, end: int) -> int:
    return len(guard_text(text[start:end]))


def test_a_verbatim_copy_is_caught_and_attributed(scanner: LeakScanner) -> None:
    result = scanner.scan(REPLY)
    assert result.verdict == "leak"
    assert result.partner_id == partner_of(DOC)
    (span,) = result.spans
    copied = len(guard_text(SPAN))
    assert copied - 2 * 4 <= span.matched <= copied
    assert span.start <= len(INTRO) and letters_between(REPLY, span.start, len(INTRO)) <= 4
    assert (
        span.end >= len(INTRO) + len(SPAN) and letters_between(REPLY, len(INTRO) + len(SPAN), span.end) <= 4
    )
    assert result.redacted == REPLY[: span.start] + REDACTION + REPLY[span.end :]


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_disguised_copies_are_caught(scanner: LeakScanner, name: str) -> None:
    result = scanner.scan(INTRO + DISGUISES[name](SPAN) + OUTRO)
    assert result.verdict == "leak"
    assert result.matched_length >= len(guard_text(SPAN)) - 8
    assert result.partner_id == partner_of(DOC)


@SETTINGS
@given(doc=st.integers(0, len(petitions()) - 1), where=st.floats(0, 1))
@example(doc=8, where=0.9999999999999999)  # its last syllable brings the petition's common last gram
@example(doc=8, where=1.0)
def test_every_copy_of_the_guaranteed_length_is_caught(
    scanner: LeakScanner, guard_index: GuardIndex, doc: int, where: float
) -> None:
    text = petitions()[doc]
    letters = normalize(text)
    need = 50
    if len(letters) < need:
        return
    first = int(where * (len(letters) - need))
    assume(not _common(guard_index, letters, first, need))
    start, end = int(letters.owners[first]), int(letters.owners[first + need - 1]) + 1
    copy = text[start:end]
    assert len(guard_text(copy)) >= need
    assert scanner.scan(FRESH + copy + FRESH).verdict == "leak"


@SETTINGS
@given(doc=st.integers(0, len(petitions()) - 1), where=st.floats(0, 1), size=st.integers(5, 35))
def test_quotes_shorter_than_a_leak_pass(scanner: LeakScanner, doc: int, where: float, size: int) -> None:
    """Quotes of a few words (up to 35 letters, ~14 syllables) pass. Longer ones, up to 45, pass
    nearly always: with the words around them happening to go on like the source for a letter or
    two and one chance filter hit (2.3 %) a 42-letter quote was once flagged (doc 387)."""
    text = petitions()[doc]
    letters = normalize(text)
    if len(letters) < size:
        return
    first = int(where * (len(letters) - size))
    quote = text[int(letters.owners[first]) : int(letters.owners[first + size - 1]) + 1]
    assert len(guard_text(quote)) < 46
    assert scanner.scan(f"청원인은 “{quote}”라고 썼습니다. {FRESH}").verdict == "pass"


@pytest.mark.parametrize(
    "reply",
    [
        FRESH,
        "청원 게시판에 올라온 글은 교원 임용 문제와 기간제 교사의 정규직화에 반대하는 의견을 담고 있습니다.",
        "문재인 대통령, 홍길동, 김철수 씨와 2019년 5월 3일, 2017-08-25 오후 3시 30분에 만났습니다.",
        "존경하는 대통령님, 안녕하십니까. 국민청원 게시판에 글을 올립니다. 감사합니다.",
        "The petition asks the government to reconsider the policy; 요약하면 정책 재검토 요청입니다.",
    ],
)
def test_normal_answers_names_and_dates_pass(scanner: LeakScanner, reply: str) -> None:
    result = scanner.scan(reply)
    assert (result.verdict, result.spans, result.redacted) == ("pass", (), reply)


def test_false_positives_on_fresh_korean_text(scanner: LeakScanner) -> None:
    flagged = {name: sum(scanner.scan(t).leaked for t in texts) for name, texts in fresh_texts().items()}
    total = sum(len(texts) for texts in fresh_texts().values())
    assert total > 6_000
    assert sum(flagged.values()) <= total // 1000, flagged


def test_false_positives_on_held_out_petitions(scanner: LeakScanner, guard_index: GuardIndex) -> None:
    """Other months' petitions that copy no 50-letter run of the indexed month must pass.

    Reposted petitions are real copies; they are found exactly (every 50-gram of the indexed
    month, compared as sorted arrays) and left out of the count.
    """
    exact = GramHash(50, seed=3)

    def grams(text: str) -> np.ndarray:
        letters = normalize(text).letters
        return exact.at(letters, np.arange(max(0, len(letters) - 49), dtype=np.int64))

    indexed = np.unique(np.concatenate([grams(t) for t in petitions()]))

    def copies(text: str) -> bool:
        keys = grams(text)
        found = indexed[np.minimum(np.searchsorted(indexed, keys), len(indexed) - 1)]
        return bool((found == keys).any())

    held_out = [t for t in petitions("2019-07") if not copies(t)]
    assert len(held_out) > 300
    flagged = [t[:40] for t in held_out if scanner.scan(t).leaked]
    assert len(flagged) <= len(held_out) // 1000, flagged


def _stream(scanner: LeakScanner, text: str, cuts: list[int], policy: Policy) -> tuple[str, int | None]:
    stream = scanner.stream(policy)
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    out = "".join(stream.feed(text[a:b]) for a, b in pairwise(bounds)) + stream.finish()
    assert stream.blocked == (policy == "block")
    return out, stream.cut


@SETTINGS
@given(cuts=st.lists(st.integers(0, len(REPLY)), max_size=30), singles=st.booleans())
def test_streaming_block_cuts_before_the_leak_for_every_chunking(
    scanner: LeakScanner, cuts: list[int], singles: bool
) -> None:
    chunks = list(range(len(REPLY))) if singles else cuts
    out, cut = _stream(scanner, REPLY, chunks, "block")
    whole = scanner.scan(REPLY)
    assert cut == whole.spans[0].start
    assert out == REPLY[:cut]
    assert cut <= len(INTRO) and letters_between(REPLY, cut, len(INTRO)) <= 4


@SETTINGS
@given(cuts=st.lists(st.integers(0, len(REPLY) * 2), max_size=30))
def test_streaming_redaction_equals_the_whole_scan_for_every_chunking(
    scanner: LeakScanner, cuts: list[int]
) -> None:
    reply = REPLY + " 또한 " + petitions()[DOC + 3][200:270] + " 끝."
    out, _ = _stream(scanner, reply, cuts, "redact")
    whole = scanner.scan(reply)
    assert len(whole.spans) == 2
    assert out == whole.redacted
    assert guard_text(SPAN)[:50] not in guard_text(out)


Hits = list[list[tuple[int, int, bool]]]


LONG_PETITIONS = [i for i, text in enumerate(petitions()) if len(text) >= 400]


@SETTINGS
@given(
    doc=st.sampled_from(LONG_PETITIONS),
    cuts=st.lists(st.integers(0, 600), max_size=80),
    fresh=st.sampled_from(fresh_texts()["klue_nli"]),
)
def test_any_chunking_finds_the_hits_of_the_whole(
    scanner: LeakScanner, doc: int, cuts: list[int], fresh: str
) -> None:
    """A reply cut anywhere (a token, a batch, the whole) gives the whole reply's hits and,
    streamed, the whole scan's redaction."""
    reply = fresh + petitions()[doc][100:400] + fresh
    bounds = [0, *sorted(c for c in cuts if c <= len(reply)), len(reply)]
    pieces = [reply[a:b] for a, b in pairwise(bounds)]
    probe, stream = scanner.stream("redact"), scanner.stream("redact")
    hits = [hit for piece in pieces for hit in probe._hits(piece)]
    assert hits == scanner.stream("redact")._hits(reply)
    assert "".join(stream.feed(piece) for piece in pieces) + stream.finish() == scanner.scan(reply).redacted
    found = [position for position, _, _ in hits]
    assert len(found) >= (len(guard_text(petitions()[doc][100:400])) - 31) // 5
    assert found == sorted(found)


def test_released_text_lags_by_the_holdback_while_nothing_hits(
    scanner: LeakScanner, guard_index: GuardIndex
) -> None:
    """No gram of the text is in the index, so no chain opens: exactly the last `width + stride
    − 2` = 29 letters are held back, widened to the start of the character the first one is in."""
    params = guard_index.params
    spec = GramHash(params.width, params.seed)

    def misses(text: str) -> bool:
        letters = normalize(text).letters
        starts = np.arange(len(letters) - params.width + 1, dtype=np.int64)
        return len(letters) > 80 and not guard_index.contains(spec.at(letters, starts)).any()

    text = next(t for t in fresh_texts()["klue_nli"] if misses(t))
    stream = scanner.stream()
    assert stream.holdback == 29
    released = ""
    for i, char in enumerate(text):
        released += stream.feed(char)
        letters = normalize(text[: i + 1])
        assert released == (text[: int(letters.owners[len(letters) - 29])] if len(letters) > 29 else "")
    assert released + stream.finish() == text


@SETTINGS
@given(
    doc=st.sampled_from(LONG_PETITIONS),
    where=st.floats(0, 1),
    cuts=st.lists(st.integers(0, 400), max_size=60),
    singles=st.booleans(),
    strict=st.booleans(),
)
@example(doc=8, where=0.9999999999999999, cuts=[], singles=False, strict=False)  # found by CI
def test_a_copy_of_the_guaranteed_length_never_reaches_the_client(
    scanner: LeakScanner,
    guard_index: GuardIndex,
    doc: int,
    where: float,
    cuts: list[int],
    singles: bool,
    strict: bool,
) -> None:
    """The tightest case for the hold-back: a copy of exactly the guaranteed length (50, or 45
    under the strict threshold), streamed in any pieces. The output only ever grows, so its
    final value bounds everything the client saw: up to the leak's start, or the redacted reply."""
    text = petitions()[doc]
    letters = normalize(text)
    need = guard_index.params.guaranteed_length(strict)
    first = int(where * (len(letters) - need))
    copy = text[int(letters.owners[first]) : int(letters.owners[first + need - 1]) + 1]
    assume(not _common(guard_index, letters, first, need))
    reply = FRESH + copy + FRESH
    whole = scanner.scan(reply, strict)
    assert whole.leaked
    bounds = (
        list(range(len(reply) + 1))
        if singles
        else [0, *sorted(c for c in cuts if c <= len(reply)), len(reply)]
    )
    for policy in ("block", "redact"):
        stream = scanner.stream(policy, strict)
        out = "".join(stream.feed(reply[a:b]) for a, b in pairwise(bounds)) + stream.finish()
        if policy == "block":
            assert stream.cut == whole.spans[0].start <= len(FRESH)
            assert out == reply[: stream.cut]
        else:
            assert out == whole.redacted
            assert guard_text(copy) not in guard_text(out)


def test_strict_threshold_catches_shorter_copies(scanner: LeakScanner) -> None:
    """45 copied letters hold at most 4 stride-aligned grams: a leak only under the strict threshold."""
    owners = normalize(SOURCE).owners
    first = next(i for i in range(100, 400) if owners[i - 1] < owners[i] and owners[i + 44] < owners[i + 45])
    quote = SOURCE[int(owners[first]) : int(owners[first + 45])]
    assert len(guard_text(quote)) == 45
    reply = FRESH + quote + FRESH
    assert [scanner.scan(reply, strict=s).verdict for s in (False, True)] == ["pass", "leak"]


def test_without_an_index_nothing_is_held_back() -> None:
    stream = LeakScanner(None).stream()
    assert stream.feed(REPLY) == REPLY
    assert stream.finish() == ""
    assert LeakScanner(None).scan(REPLY) == ScanResult((), REPLY)


@SETTINGS
@given(
    doc=st.sampled_from(LONG_PETITIONS),
    cuts=st.lists(st.integers(0, 700), max_size=60),
)
def test_a_shared_reading_finds_what_two_scanners_find(
    scanner: LeakScanner, doc: int, cuts: list[int]
) -> None:
    """The plain and reversed views' one reading (`read_both`) releases, cuts and attributes
    exactly as a forward and a backward scanner each reading the text."""
    passage = petitions()[doc][100:400]
    reply = passage + " 그리고 " + passage[::-1]
    bounds = [0, *sorted(c for c in cuts if c <= len(reply)), len(reply)]
    index = scanner.current()
    assert index is not None
    ahead, behind = read_both(index, index.params, "redact")
    alone = [StreamScanner(index, index.params, "redact", reverse=reverse) for reverse in (False, True)]
    shared, separate = ["", ""], ["", ""]
    for a, b in pairwise(bounds):
        got = feed_both(ahead, behind, reply[a:b])
        shared = [shared[i] + got[i] for i in range(2)]
        separate = [separate[i] + alone[i].feed(reply[a:b]) for i in range(2)]
    shared = [shared[0] + ahead.finish(), shared[1] + behind.finish()]
    separate = [separate[i] + alone[i].finish() for i in range(2)]
    assert shared == separate
    assert (ahead.spans, behind.spans) == (alone[0].spans, alone[1].spans)
    assert ahead.spans and behind.spans


def test_a_partner_quotes_its_own_text_beside_a_chance_hit(
    guard_index: GuardIndex, scanner: LeakScanner
) -> None:
    """A partner's quote of its own petition passes although its chain starts one stride early
    with a chance filter hit (2.3 % of positions: about one quote in forty): no document holds
    that gram, so it is no one's text. Another partner reading the same reply is still stopped."""
    doc = 7
    text, owner = petitions()[doc], partner_of(doc)
    width, stride = guard_index.params.width, guard_index.params.stride
    source = normalize(text)
    start = next(p for p in range(100, len(source), stride) if source.owners[p] != source.owners[p - 1])
    copy = text[source.owners[start] : source.owners[start + 70]]
    spec = GramHash(width, guard_index.params.seed)
    rng = np.random.default_rng(5)
    for _ in range(2_000):
        prefix = "".join(chr(0xAC00 + int(i)) for i in rng.integers(0, 11_172, size=4))
        letters = normalize(prefix + copy).letters
        early = len(normalize(prefix).letters) - stride  # one stride before the copy's first gram
        keys = spec.at(letters, np.arange(len(letters) - width + 1, dtype=np.int64))
        if guard_index.counted(keys)[early] and not guard_index.docs.lookup(keys[early : early + 1]):
            break
    else:
        pytest.fail("no chance hit one stride before the copy")
    reply = prefix + copy
    [span] = scanner.inspect(reply).spans
    assert span.start < len(prefix)  # the chain starts with the chance hit
    assert not scanner.inspect(reply, own=owner).leaked
    assert scanner.inspect(reply, own=partner_of(doc + 1)).leaked
    chain = keys[early : early + 5 * stride : stride]
    assert guard_index.attribute(chain) == () and guard_index.owned_by(chain, owner)
    assert not guard_index.owned_by(keys[early : early + 1], owner)  # a chance key alone is no one's
