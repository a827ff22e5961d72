"""Streams scanned in batches: cut no later than when scanning at every call, nothing unscanned sent.

A lazy view may start sooner in reply offsets when batched (its trigger is checked on text not
released yet), so a batched stream can cut earlier, never later; where the lazy views start
depends on where checks fall, so the cut of a disguised copy may depend on the chunks."""

from __future__ import annotations

import itertools

import pytest

from tests.guard.corpus import fresh_texts, petitions
from tests.guard.disguise import ALL_DISGUISES, VIEW_DISGUISES
from tokenclub.guard.detection.coverage import reply_grams
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.detection.views import BATCH, BATCH_LIMIT

SPAN = petitions()[10][120:200]
INTRO = "네, 말씀하신 청원의 핵심을 정리해 드리겠습니다. "
OUTRO = " 이상이 주요 내용이며, 더 궁금한 점이 있으면 말씀해 주세요."
CAUGHT = sorted(VIEW_DISGUISES)


def _streamed(
    scanner: LeakScanner, reply: str, batch: int, size: int, limit: int = BATCH_LIMIT
) -> tuple[str, int | None]:
    stream = scanner.watch("block")
    stream.batch, stream.batch_limit = batch, limit
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
    per_call, cut = _streamed(scanner, reply, 1, 1, limit=1)
    assert cut is not None and per_call == reply[:cut]
    for size, limit in itertools.product((1, 3, 7, BATCH + 5), (BATCH, BATCH_LIMIT)):
        out, batched_cut = _streamed(scanner, reply, BATCH, size, limit)
        assert batched_cut is not None and batched_cut <= cut and out == reply[:batched_cut]


def test_a_fresh_reply_streamed_in_batches_goes_out_whole_and_in_order(scanner: LeakScanner) -> None:
    for text in [t for source in fresh_texts().values() for t in source[:20]]:
        for limit in (BATCH, BATCH_LIMIT):
            assert _streamed(scanner, text, BATCH, 3, limit) == (text, None)


def test_a_streams_batch_grows_with_what_it_scanned_up_to_its_limit(scanner: LeakScanner) -> None:
    """The first text goes out after the first `BATCH` characters whatever the limit; later
    scans come a quarter of the text scanned apart, at most `batch_limit`."""
    text = "".join(t for source in fresh_texts().values() for t in source[:20])[:2000]
    for limit in (BATCH, 64, BATCH_LIMIT):
        stream = scanner.watch("block")
        stream.batch_limit = limit
        scans, first = [], None
        for start in range(len(text)):
            scanned = stream._scanned
            if stream.feed(text[start]) and first is None:
                first = start + 1
            if stream._scanned != scanned:
                scans.append(stream._scanned - scanned)
        assert first == BATCH
        assert scans[:4] == [BATCH] * 4
        assert all(size == min(limit, max(BATCH, sum(scans[:i]) // 4)) for i, size in enumerate(scans))
        assert max(scans) == limit


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
    # a text whose only hits are the filters' chance hits (no document has them) is quiet too
    assert any(_held(scanner, text) for text in quiet)
    assert not scanner.inspect(INTRO + SPAN + OUTRO).quiet
    assert reply_grams(index, INTRO + SPAN + OUTRO)
    escaped = "".join(f"&#{ord(c)};" for c in SPAN)
    assert not scanner.inspect(escaped).quiet  # decoded: not read as sent
    stream = scanner.watch("block")
    stream.feed(quiet[0][:5])
    assert not stream.quiet  # received but not scanned yet (a batch is gathering)


def _held(scanner: LeakScanner, text: str) -> int:
    """Counted grams the filters hold in `text` (chance hits included)."""
    stream = scanner.watch("block")
    stream.feed(text)
    stream.finish()
    return stream._views[0].scanner.held
