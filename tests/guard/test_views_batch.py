"""Streams scanned in batches: cut no later than when scanning at every call, nothing unscanned sent.

A lazy view may start sooner in reply offsets when batched (its trigger is checked on text not
released yet), so a batched stream can cut earlier, never later; where the lazy views start
depends on where checks fall, so the cut of a disguised copy may depend on the chunks."""

from __future__ import annotations

import pytest

from tests.guard.corpus import fresh_texts, petitions
from tests.guard.disguise import ALL_DISGUISES, VIEW_DISGUISES
from tokenclub.guard.detection.coverage import reply_grams
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.detection.views import BATCH

SPAN = petitions()[10][120:200]
INTRO = "네, 말씀하신 청원의 핵심을 정리해 드리겠습니다. "
OUTRO = " 이상이 주요 내용이며, 더 궁금한 점이 있으면 말씀해 주세요."
CAUGHT = sorted(VIEW_DISGUISES)


def _streamed(scanner: LeakScanner, reply: str, batch: int, size: int) -> tuple[str, int | None]:
    stream = scanner.watch("block")
    stream.batch = batch
    out = ""
    for start in range(0, len(reply), size):
        out += stream.feed(reply[start : start + size])
        assert len(out) <= stream._scanned  # nothing goes out before it was scanned
        if stream.blocked:
            break
    return out + stream.finish(), stream.cut


@pytest.mark.parametrize("name", CAUGHT)
def test_a_batched_stream_cuts_no_later_than_one_scanned_every_call(scanner: LeakScanner, name: str) -> None:
    reply = INTRO + ALL_DISGUISES[name](SPAN) + OUTRO
    per_call, cut = _streamed(scanner, reply, 1, 1)
    assert cut is not None and per_call == reply[:cut]
    for size in (1, 3, 7, BATCH + 5):
        out, batched_cut = _streamed(scanner, reply, BATCH, size)
        assert batched_cut is not None and batched_cut <= cut and out == reply[:batched_cut]


def test_a_fresh_reply_streamed_in_batches_goes_out_whole_and_in_order(scanner: LeakScanner) -> None:
    for text in [t for source in fresh_texts().values() for t in source[:20]]:
        assert _streamed(scanner, text, BATCH, 3) == (text, None)


def test_only_a_reply_holding_no_counted_gram_as_sent_is_quiet(scanner: LeakScanner) -> None:
    """`quiet` lets the gateway skip reading a reply again for joins, coverage and credits: it
    must never say so of text that holds a gram of the index, plainly or through escapes."""
    index = scanner.current()
    assert index is not None
    fresh = [t for source in fresh_texts().values() for t in source[:20]]
    quiet = [text for text in fresh if scanner.inspect(text).quiet]
    assert len(quiet) >= len(fresh) // 3  # the rest hold a gram of a few documents (a stock phrase)
    for text in quiet:
        assert reply_grams(index, text) == {}
    assert not scanner.inspect(INTRO + SPAN + OUTRO).quiet
    assert reply_grams(index, INTRO + SPAN + OUTRO)
    escaped = "".join(f"&#{ord(c)};" for c in SPAN)
    assert not scanner.inspect(escaped).quiet  # decoded: not read as sent
    stream = scanner.watch("block")
    stream.feed(quiet[0][:5])
    assert not stream.quiet  # received but not scanned yet (a batch is gathering)
