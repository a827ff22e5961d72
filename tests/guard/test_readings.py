"""Readings the index chooses: symbols standing for jamo, and Han characters with several readings."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.guard.corpus import petitions
from tests.guard.disguise import compatibility_jamo, hanja
from tokenclub.guard.detection.lookalike import hanja_candidates
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.detection.transforms import HanjaRead, LookalikeRead, Transform, lookalike_seen
from tokenclub.guard.indexing.index import GuardIndex

SPAN = petitions()[10][120:200]
INTRO = "네, 말씀하신 청원의 핵심을 정리해 드리겠습니다. "
SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _swap(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in compatibility_jamo(text))


def test_symbols_no_table_lists_are_read_as_the_jamo_the_index_confirms(scanner: LeakScanner) -> None:
    """Other look-alikes than the red team's (a white circle, a vertical bar, a white square),
    none of them folded by the guard letters: the copy is caught whole and streamed."""
    reply = INTRO + _swap(SPAN, {"ㅇ": "○", "ㅣ": "|", "ㅁ": "□"})
    assert not scanner.scan(reply).leaked  # the plain view alone misses it
    assert scanner.inspect(reply).leaked
    stream = scanner.watch("block")
    out = "".join(stream.feed(reply[i : i + 3]) for i in range(0, len(reply), 3)) + stream.finish()
    assert stream.blocked and len(out) < len(INTRO) + 45  # a character is at most one letter here


def test_typed_jamo_of_fresh_text_keeps_its_symbols(guard_index: GuardIndex) -> None:
    """Nothing confirms a reading of fresh text, so its symbols stay as they are."""
    fresh = "ㅈㅓㄴ ㅇㅗ늘 ㅎㅏㄴㄱㅏㅇ ㄱㅗㅇㅇㅜㅓㄴㅇㅔ ㄱㅏㅆㄷㅏ〇ㅘㅆㅇㅓ口ㅛ ㅋㅋㅋ!!"
    assert lookalike_seen(fresh) and not lookalike_seen("ㅋㅋㅋ!! ㅠㅠ 좋아요")
    read = LookalikeRead(guard_index)
    assert read.feed(fresh) + read.flush() == fresh


def test_a_han_character_is_read_the_way_the_copy_needs(
    scanner: LeakScanner, guard_index: GuardIndex
) -> None:
    """李 reads 리 inside a word by the first guess, 이 where the copy has 이: the index chooses."""
    assert hanja_candidates()["列"] == ("렬", "열") and hanja_candidates()["李"] == ("리", "이")
    disguised = hanja(SPAN)
    read = HanjaRead(guard_index)
    assert read.feed(INTRO + disguised) + read.flush() == INTRO + SPAN
    assert scanner.inspect(INTRO + disguised).leaked


def _run(transform: Transform, pieces: list[str]) -> tuple[str, list[int]]:
    out = "".join(transform.feed(p) for p in pieces) + transform.flush()
    return out, list(transform.origins)


@SETTINGS
@given(cuts=st.lists(st.integers(0, 400), max_size=20))
def test_chosen_readings_do_not_depend_on_how_the_cut_falls(guard_index: GuardIndex, cuts: list[int]) -> None:
    looks = INTRO + _swap(SPAN, {"ㅇ": "〇", "ㅁ": "口"})
    for text, make in ((looks, LookalikeRead), (INTRO + hanja(SPAN), HanjaRead)):
        bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
        pieces = [text[a:b] for a, b in pairwise(bounds)]
        assert _run(make(guard_index), pieces) == _run(make(guard_index), [text])
