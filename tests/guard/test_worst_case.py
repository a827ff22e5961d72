"""The worst-case red team's judge and pieces (the attacks themselves run in bench/)."""

from __future__ import annotations

from tests.guard.corpus import petitions
from tests.guard.disguise import ALL_DISGUISES
from tokenclub.guard.audits.worst_case import PIECE_LETTERS, pieces, recovered_letters, strings
from tokenclub.guard.normalize import guard_text

SOURCE = petitions()[10]
PASSAGE = SOURCE[100:340]


def test_pieces_stay_below_the_join_length_and_rebuild_the_passage() -> None:
    cut = pieces(PASSAGE)
    assert len(cut) >= 8
    assert all(len(guard_text(piece)) <= PIECE_LETTERS for piece in cut)
    assert guard_text("".join(cut)) == guard_text(PASSAGE)


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
