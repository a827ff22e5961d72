"""Every canonical view: disguised copies caught whole and streamed; transforms chunk-independent."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.guard.conftest import partner_of
from tests.guard.corpus import fresh_texts, petitions
from tests.guard.disguise import ALL_DISGUISES, VIEW_DISGUISES
from tokenclub.guard import compiled
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.detection.transforms import (
    FILLER_PERIODS,
    FILLER_REPEATS,
    Base64Runs,
    Decoder,
    Filler,
    Romanized,
    Transform,
)
from tokenclub.guard.detection.views import LAZY_VIEWS, hints
from tokenclub.guard.normalize import code_points, guard_letters, guard_text

DOC = 10
SPAN = petitions()[DOC][120:200]
INTRO = "네, 말씀하신 청원의 핵심을 정리해 드리겠습니다. "
OUTRO = " 이상이 주요 내용이며, 더 궁금한 점이 있으면 말씀해 주세요."
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CAUGHT = sorted(VIEW_DISGUISES)


@pytest.mark.parametrize("name", CAUGHT)
def test_a_disguised_copy_is_caught_whole_and_cut_in_a_stream(scanner: LeakScanner, name: str) -> None:
    reply = INTRO + ALL_DISGUISES[name](SPAN) + OUTRO
    result = scanner.inspect(reply)
    assert result.leaked and result.partner_id == partner_of(DOC)
    stream = scanner.watch("block")
    out = "".join(stream.feed(char) for char in reply) + stream.finish()
    assert stream.blocked and out == reply[: stream.cut]
    # what went out of the disguised copy holds fewer letters than a leak, disguise and all
    assert len(guard_text(out[len(INTRO) :])) < 45


def test_fresh_text_passes_every_view(scanner: LeakScanner) -> None:
    texts = [t for source in fresh_texts().values() for t in source[:300]]
    flagged = [t[:40] for t in texts if scanner.inspect(t).leaked]
    assert flagged == []
    assert scanner.inspect("x" * 40 + " 2024년 5월 4일 A씨와 B씨가 C동 1번지에서 만났다").spans == ()


def _pieces(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


def _run(transform: Transform, pieces: list[str]) -> tuple[str, list[int]]:
    out = "".join(transform.feed(p) for p in pieces) + transform.flush()
    return out, list(transform.origins)


@SETTINGS
@given(cuts=st.lists(st.integers(0, 400), max_size=40), name=st.sampled_from(sorted(VIEW_DISGUISES)))
def test_transforms_do_not_depend_on_how_the_text_is_cut(cuts: list[int], name: str) -> None:
    text = INTRO + ALL_DISGUISES[name](SPAN[:40]) + OUTRO
    for make in (Decoder, Filler, Base64Runs, Romanized):
        assert _run(make(), _pieces(text, cuts)) == _run(make(), [text])


def filler_reference(text: str) -> tuple[str, list[int]]:
    """The filler rule over the whole text at once, a character at a time: a lettered character
    is dropped when it is one of `FILLER_REPEATS` equal ones, each step P or P − 1 (at least 2)
    among the lettered characters, for some period P."""
    units = [(char, at) for at, char in enumerate(text) if guard_letters(char)]
    chars = [char for char, _ in units]

    def periodic(i: int) -> bool:
        for period in FILLER_PERIODS:
            run = 1
            for direction in (-1, 1):
                j = i
                while run < FILLER_REPEATS:
                    step = next(
                        (
                            s
                            for s in (period, period - 1)
                            if s > 1
                            and 0 <= j + direction * s < len(chars)
                            and chars[j + direction * s] == chars[i]
                        ),
                        None,
                    )
                    if step is None:
                        break
                    j += direction * step
                    run += 1
            if run >= FILLER_REPEATS:
                return True
        return False

    kept = [unit for i, unit in enumerate(units) if not periodic(i)]
    return "".join(char for char, _ in kept), [at for _, at in kept]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="가나다 ,.a1_\u3164㈜", max_size=160), st.lists(st.integers(0, 160), max_size=12))
def test_the_filler_view_drops_what_its_rule_names_however_the_text_is_cut(
    text: str, cuts: list[int]
) -> None:
    assert _run(Filler(), _pieces(text, cuts)) == filler_reference(text)


def test_decoder_maps_each_escape_to_its_first_character() -> None:
    out, origins = _run(Decoder(), ["가&#xAC00;<b>나</b>\\uB2E4%EB%9D%BC &amp; 끝"])
    assert out == "가가나다라 & 끝"
    assert origins == [0, 1, 12, 17, 23, 32, 33, 38, 39]


_FILLER_SEEN = re.compile(
    "|".join(
        rf"(.)(?:.{{{max(1, period - 2)},{period - 1}}}\{n}){{{FILLER_REPEATS - 1}}}"
        for n, period in enumerate(FILLER_PERIODS, 1)
    ),
    re.DOTALL,
)
"""The filler trigger's rule as an expression over the characters that have guard letters:
one character `FILLER_REPEATS` times, each step `period` or `period − 1` of them, for some
period."""


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="가나다 ,.a1_\u3164㈜", max_size=120))
def test_the_filler_trigger_answers_as_its_expression(text: str) -> None:
    letters = "".join(char for char in text if guard_letters(char))
    assert filler_seen(text) == (_FILLER_SEEN.search(letters) is not None)


@pytest.mark.parametrize(("steps", "seen"), [((8, 7, 8), True), ((2, 2, 2), True), ((8, 6, 8), False)])
def test_the_filler_trigger_sees_the_widest_stride_among_letters_that_never_repeat(
    steps: tuple[int, ...], seen: bool
) -> None:
    """One letter at the given steps among distinct others: steps of one period (8 and 7, or
    2) are a run however far apart, steps of two periods (8 and 6) are not."""
    others = iter(chr(0xAC01 + i) for i in range(100))
    letters = "가" + "".join("".join(next(others) for _ in range(step - 1)) + "가" for step in steps)
    assert filler_seen(letters) is seen
    assert (_FILLER_SEEN.search(letters) is not None) is seen


def filler_seen(text: str) -> bool:
    return bool(hints(code_points(text)) & compiled.HINT_FILLER)


WINDOWS = st.one_of(
    st.text(max_size=150),
    st.text(alphabet="가나힣ㄱㅏㅣ漢字 aZ09+/-_ .,…·“\u3000\u1160\uffa0〇丨口", max_size=150),
)


@settings(max_examples=500, deadline=None)
@given(WINDOWS)
def test_a_trigger_fires_only_on_a_window_that_holds_its_hint(text: str) -> None:
    """A trigger whose hint the window lacks is not tried; it could not have fired."""
    points = code_points(text)
    held = hints(points)
    assert held & ~compiled.HINT_FILLER == compiled.trigger_hints(points)
    fired = [spec.name for spec in LAZY_VIEWS if spec.name != "filler" and spec.seen(text, points)]
    assert [name for name in fired if not held & next(s.hint for s in LAZY_VIEWS if s.name == name)] == []


def test_fresh_korean_text_holds_few_hints() -> None:
    """Hangul, spaces and punctuation alone hold none, so no trigger is tried there."""
    assert hints(code_points("서울은 대한민국의 수도이며, 한강이 도시를 가로지릅니다! (2019)")) == 0
    assert compiled.trigger_hints(code_points("漢")) == compiled.HINT_HAN
    assert compiled.trigger_hints(code_points("so-ul-eun-dae")) == compiled.HINT_HYPHEN | compiled.HINT_WORDS
    assert compiled.trigger_hints(code_points("ㅅㅓ")) == compiled.HINT_JAMO
    base64 = code_points("QUJDREVGR0hJSktMTU5P")
    assert compiled.trigger_hints(base64) == compiled.HINT_RUN | compiled.HINT_WORDS


def test_a_filler_word_between_punctuated_groups_starts_the_filler_view() -> None:
    """Punctuation between two fillers shortens a step by one letter; the trigger allows it as
    the filler rule does, so the view starts while the copy is still held back."""
    assert filler_seen("공사: 그리고 대리경 그리고 영자/ 그리고 산림조 그리고")
    assert not filler_seen("공사는 대리경영자가 맡고, 산림조합이 책임 시공을 하는 사업입니다.")
