"""The worst-case red team's judge and pieces (the attacks themselves run in bench/)."""

from __future__ import annotations

from tests.gateway.fake_upstream import serve_in_thread
from tests.guard.corpus import petitions
from tests.guard.disguise import ALL_DISGUISES
from tests.guard.worst_case import worst_case_app
from tokenclub.guard.audits.extraction import client_for
from tokenclub.guard.audits.redteam import Target
from tokenclub.guard.audits.worst_case import (
    PIECE_LETTERS,
    SPLIT_LETTERS,
    pieces,
    recovered_letters,
    run_split,
    split_pieces,
    strings,
    summarize_families,
)
from tokenclub.guard.normalize import guard_text

SOURCE = petitions()[10]
PASSAGE = SOURCE[100:340]


def test_pieces_stay_below_the_join_length_and_rebuild_the_passage() -> None:
    cut = pieces(PASSAGE)
    assert len(cut) >= 8
    assert all(len(guard_text(piece)) <= PIECE_LETTERS for piece in cut)
    assert guard_text("".join(cut)) == guard_text(PASSAGE)


def test_split_pieces_hold_31_to_40_letters_in_order() -> None:
    cut = split_pieces(PASSAGE)
    sizes = [len(guard_text(piece)) for piece in cut[:-1]]
    assert len(cut) >= 8 and all(SPLIT_LETTERS[0] - 2 <= n <= SPLIT_LETTERS[1] for n in sizes)
    assert len(set(sizes)) > 3  # the sizes vary
    assert guard_text("".join(cut)) == guard_text(PASSAGE)


def test_split_families_leak_without_the_guard() -> None:
    """Against the upstream directly, all pieces at once or in turn give the passage back."""
    target = Target("10", 1, SOURCE, PASSAGE)
    with (
        serve_in_thread(worst_case_app()) as url,
        client_for(url + "/v1", None) as a,
        client_for(url + "/v1", None) as b,
    ):
        table = summarize_families(run_split([a, b], "worst-case", [target], 50))
    for family in ("pieces_concurrent", "pieces_alternating"):
        assert table[family]["attempts"] == 2 and table[family]["leak_rate"] == 1.0, family
        assert table[family]["max_copied_letters"] >= len(guard_text(PASSAGE)) - 2


def test_the_judge_recovers_what_the_views_undo_and_no_more() -> None:
    letters = len(guard_text(PASSAGE))
    for name in ("reversed", "json_escapes", "filler_syllable", "base64", "html_tags"):
        assert recovered_letters(ALL_DISGUISES[name](PASSAGE), SOURCE) >= letters - 30, name
    # digits and punctuation break the romanized groups; what is read back is still far past 50
    assert recovered_letters(ALL_DISGUISES["romanized"](PASSAGE), SOURCE) >= 200
    assert recovered_letters(ALL_DISGUISES["lookalike_jamo"](PASSAGE), SOURCE) < 50
    assert recovered_letters("오늘은 날씨가 맑고 바람이 시원합니다.", SOURCE) < 20


def test_every_string_of_a_reply_is_read_keys_included() -> None:
    reply = {"choices": [{"message": {"content": "a", "tool_calls": [{"function": {"arguments": "b"}}]}}]}
    assert list(strings(reply)) == [
        "choices",
        "message",
        "content",
        "a",
        "tool_calls",
        "function",
        "arguments",
        "b",
    ]
