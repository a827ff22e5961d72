"""The guard normalization: disguises collapse, chunking never matters, offsets lead back."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.guard.corpus import petitions
from tests.guard.disguise import DISGUISES, compatibility_jamo
from tokenclub.guard.normalize import guard_letters, guard_text, normalize, normalize_both

SAMPLE = petitions()[10][:300]


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_every_disguise_of_a_petition_gives_the_same_letters(name: str) -> None:
    assert guard_text(DISGUISES[name](SAMPLE)) == guard_text(SAMPLE)


def test_hangul_becomes_one_jamo_stream() -> None:
    assert guard_text("한글") == "ㅎㅏㄴㄱㅡㄹ"
    assert guard_text("왔닭") == guard_text("ㅇㅗㅏㅅㅅㄷㅏㄹㄱ") == "ㅇㅗㅏㅅㅅㄷㅏㄹㄱ"
    assert guard_text("의사") == guard_text("ㅇㅢㅅㅏ") == "ㅇㅡㅣㅅㅏ"


def test_only_letters_and_digits_remain() -> None:
    assert guard_text("Hello, World! 2019-05-03 ①②") == "helloworld2019050312"
    assert guard_text(" \t\n.,;:!?'\"()[]{}<>~·…—–-_/\\|@#$%^&*+=★♥😀") == ""
    assert guard_text("\u200b\u200c\u200d\u2060\ufeff\u00ad\u3164\uffa0") == ""
    assert guard_text("café CAFE\u0301 ＣＡＦＥ 𝐂𝐀𝐅𝐄") == "cafecafecafecafe"
    assert guard_text("탄소중립ㆍ녹색성장") == guard_text("탄소중립·녹색성장")


def test_owners_point_at_the_character_each_letter_came_from() -> None:
    text = "가, ab 닭"
    result = normalize(text, offset=100)
    assert result.text == "ㄱㅏabㄷㅏㄹㄱ"
    assert result.owners.tolist() == [100, 100, 103, 104, 106, 106, 106, 106]
    assert [text[o - 100] for o in result.owners.tolist()] == ["가", "가", "a", "b", "닭", "닭", "닭", "닭"]


def test_lone_surrogates_are_dropped_not_fatal() -> None:
    assert guard_text("가\udc80나") == "ㄱㅏㄴㅏ"


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=12),
    ways=st.lists(st.sampled_from(["normalize", "both"]), min_size=13, max_size=13),
)
def test_chunking_never_changes_letters_or_owners(text: str, cuts: list[int], ways: list[str]) -> None:
    """Pieces normalised either way, in any mix, add up to the whole text's letters (forwards
    and each character's letters reversed) and owners, and those are each character's own."""
    whole, behind = normalize(text), normalize(text, backwards=True)
    assert whole.text == "".join(guard_letters(char) for char in text)
    assert behind.text == "".join(guard_letters(char)[::-1] for char in text)
    bounds = [0, *sorted(c for c in cuts if c <= len(text)), len(text)]
    ahead: list[int] = []
    backward: list[int] = []
    owners: list[int] = []
    for (a, b), way in zip(pairwise(bounds), ways, strict=False):
        if way == "normalize":
            piece = normalize(text[a:b], a)
            got = (piece.letters, normalize(text[a:b], a, backwards=True).letters, piece.owners)
        else:
            got = normalize_both(text[a:b], a)
        ahead += got[0].tolist()
        backward += got[1].tolist()
        owners += got[2].tolist()
    assert ahead == whole.letters.tolist() and backward == behind.letters.tolist()
    assert owners == whole.owners.tolist() == behind.owners.tolist()


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), max_size=30))
def test_every_syllable_equals_its_typed_out_letters(text: str) -> None:
    assert (
        guard_text(text) == guard_text(compatibility_jamo(text)) == guard_text(compatibility_jamo(text, True))
    )


def test_per_character_map_is_the_whole_normalization() -> None:
    assert "".join(guard_letters(c) for c in SAMPLE) == guard_text(SAMPLE)
