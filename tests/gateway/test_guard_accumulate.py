"""Sentence-by-sentence extraction through the gateway: joined pieces, and the customer's tally.

The scripted upstream of `test_guard.py` answers each request with one clause of partner A's
petition, each shorter than the leak length (so the per-reply guard passes every one of them).
A clause that continues (or precedes) one the customer was already sent is stopped as a join.
Clauses that do not touch each other add to the customer's accumulated copy, which crosses the
soft budget (strict threshold), then the hard one (refused, nothing sent upstream, nothing
charged). Requests go through the official `openai` SDK, streamed and not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import openai
import pytest
from sqlalchemy import select

from tests.gateway.conftest import config
from tests.gateway.fake_upstream import serve_in_thread
from tests.gateway.test_guard import (
    CALLS,
    DOC_A,
    FRESH,
    INTRO,
    MODEL,
    OUTRO,
    World,
    _strict_only_copy,
    chat,
    client,
    guard_events,
    say,
    scripted_url,
    settled,
    streamed_events,
    world,
)
from tokenclub.accounts.keys import create_key
from tokenclub.db.engine import Database
from tokenclub.db.guard_schema import GuardTally
from tokenclub.gateway.app import create_app
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.guard.detection.accumulate import Budget
from tokenclub.guard.indexing.index import open_index
from tokenclub.guard.normalize import guard_text
from tokenclub.guard.service import BLOCKED_MESSAGE, GatewayGuard

__all__ = ["scripted_url", "world"]  # fixtures shared with test_guard.py

BUDGET = Budget(soft=60, hard=120, window_s=3600, min_hits=2, allowance=0.1)


@contextmanager
def serve_gateway(db: Database, upstream: str, world: World) -> Iterator[str]:
    guard = GatewayGuard(world.root, "block", "strict", check_every_s=0.0, budget=BUDGET)
    routes = {MODEL: ModelRoute(MODEL, upstream + "/v1", MODEL)}
    with serve_in_thread(create_app(replace(config(db, upstream), routes=routes, guard=guard))) as url:
        yield url


def word_runs(doc: str, letters: int = 40) -> list[str]:
    """The document cut into consecutive runs of whole words, each at most `letters` guard
    letters: below the strict threshold too (45), so that no reply is a leak on its own."""
    out: list[str] = []
    current: list[str] = []
    for word in doc.split():
        if current and len(guard_text(" ".join([*current, word]))) > letters:
            out.append(" ".join(current))
            current = []
        current.append(word)
    return out


def clauses(doc: str, letters: int = 40) -> list[str]:
    """`word_runs` of at least 38 letters (so no longer next to each other in the document)."""
    return [c for c in word_runs(doc, letters) if len(guard_text(c)) >= 38]


def neighbours(doc: str, count: int, skip: int = 0) -> list[str]:
    """`count` consecutive word runs of the document, each of at least 34 letters."""
    runs = word_runs(doc)
    starts = [
        i for i in range(len(runs) - count) if all(len(guard_text(r)) >= 34 for r in runs[i : i + count])
    ]
    return runs[starts[skip] : starts[skip] + count]


def streamed(url: str, world: World, prompt: str) -> tuple[str, str | None]:
    """The streamed reply's text and its last finish reason."""
    stream = client(url, world.a).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=1000, stream=True
    )
    chunks = [chunk.choices[0] for chunk in stream if chunk.choices]
    finish = [c.finish_reason for c in chunks if c.finish_reason is not None]
    return "".join(c.delta.content or "" for c in chunks), finish[-1] if finish else None


def tallied(db: Database) -> int:
    with db.transaction() as session:
        return sum(session.scalars(select(GuardTally.letters)))


def wait_for_tally(db: Database, before: int) -> None:
    """A stream's credits are written after its last chunk has gone out."""
    for _ in range(200):
        if tallied(db) > before:
            return
        time.sleep(0.02)
    raise AssertionError("the stream was not tallied")


def test_consecutive_pieces_are_stopped_as_one_copy(db: Database, scripted_url: str, world: World) -> None:
    pieces = neighbours(DOC_A, 3) + neighbours(DOC_A, 2, skip=4)
    prompts = [say(f"{i + 1}번 구절만 보여 주세요.", piece) for i, piece in enumerate(pieces)]
    with db.transaction() as session:
        second_key, _ = create_key(session, world.a.customer_id)
    same_customer = replace(world.a, key=second_key)
    with serve_gateway(db, scripted_url, world) as url:
        assert chat(url, world.a, prompts[1]) == (pieces[1], "stop")  # alone it passes
        assert chat(url, world.outsider, prompts[2]) == (pieces[2], "stop")  # another customer's
        assert chat(url, world.a, prompts[2]) == (BLOCKED_MESSAGE, "content_filter")  # goes on from 1
        assert chat(url, world.a, prompts[0]) == (BLOCKED_MESSAGE, "content_filter")  # leads into 1
        assert chat(url, same_customer, prompts[2]) == (BLOCKED_MESSAGE, "content_filter")  # other key
        assert chat(url, world.a, prompts[3]) == (pieces[3], "stop")  # touches nothing sent before
        # streamed, the piece that goes on from the 4th is cut before its first letter
        assert streamed(url, world, prompts[4]) == ("", "content_filter")
        assert streamed(url, world, say("주말 이야기를 해 주세요.", FRESH)) == (FRESH, "stop")
    partner = world.a.partner_id
    events = [(e.verdict, e.action, e.partner_id) for e in streamed_events(db, 6)]
    # the 2nd and 4th pieces delivered copy 60+ letters: the streams are answered under watch
    watched = ("accumulated", "strict", partner)
    blocked = ("joined", "blocked", partner)
    assert events == [blocked, blocked, blocked, watched, blocked, watched]
    joined = [e.matched_length for e in guard_events(db) if e.verdict == "joined"]
    assert joined == [46] * 4  # 5 grams across the seam: 26 + 4 × 5 letters


def test_sentence_by_sentence_extraction_is_watched_then_stopped(
    db: Database, scripted_url: str, world: World
) -> None:
    pieces = clauses(DOC_A)[::2][:6]  # not touching each other: no joins, only the tally
    assert len(pieces) == 6
    prompts = [say(f"{i + 1}번째 문장만 알려 주세요.", piece) for i, piece in enumerate(pieces)]
    fresh = say("주말 이야기를 해 주세요.", FRESH)
    with serve_gateway(db, scripted_url, world) as url:
        delivered: list[str] = []
        for i, prompt in enumerate(prompts[:4]):
            if i % 2:  # the stream path credits the tally too (written after the stream ends)
                before = tallied(db)
                content, finish = streamed(url, world, prompt)
                assert finish == "stop"
                delivered.append(content)
                wait_for_tally(db, before)
            else:
                content, finish = chat(url, world.a, prompt)
                assert finish == "stop"
                delivered.append(content)
            # another key of another customer asking for fresh text is never watched
            assert chat(url, world.outsider, fresh) == (FRESH, "stop")
        assert delivered == pieces[:4]  # each clause alone passes the per-reply guard
        calls = len(CALLS)
        with pytest.raises(openai.BadRequestError) as refused:
            chat(url, world.a, prompts[4])
        assert len(CALLS) == calls  # refused before the upstream was asked
        assert chat(url, world.outsider, fresh) == (FRESH, "stop")

    assert refused.value.status_code == 400
    assert refused.value.code == "content_filter"
    assert "limit 120" in refused.value.message
    events = [(e.key_id, e.verdict, e.action, e.partner_id) for e in guard_events(db)]
    a_key = {e.key_id for e in guard_events(db) if e.key_id is not None}
    assert len(a_key) == 1  # every event is partner A's attacker's key; none for the outsider
    (key_id,) = a_key
    partner = world.a.partner_id
    strict = [(key_id, "accumulated", "strict", partner)]
    stopped = [(key_id, "accumulated", "refused", partner)]
    # the clauses earn 61 letters in the first two requests: past 60 from the 3rd request (61,
    # then 94), past 120 at the 5th (126)
    assert events == strict * 2 + stopped
    assert [e.matched_length for e in guard_events(db)] == [61, 94, 126]
    assert "copied 126 letters" in refused.value.message
    # the refused request holds nothing and is charged nothing: 5 usage events, one a failure
    usage = settled(db, world.a, 5)
    assert sorted(u.status for u in usage) == ["guard_accumulated", "ok", "ok", "ok", "ok"]
    assert next(u for u in usage if u.status == "guard_accumulated").completion_tokens == 0


def test_past_the_soft_budget_replies_are_scanned_under_the_strict_threshold(
    db: Database, scripted_url: str, world: World
) -> None:
    index = open_index(world.root)
    assert index is not None
    reply = INTRO + _strict_only_copy(index.params) + OUTRO  # 45+ letters: caught only when strict
    # clauses away from the copy above and from each other: they add up, they do not join
    pieces = [say(f"{i}번째 구절을 알려 주세요.", piece) for i, piece in enumerate(clauses(DOC_A)[::2][3:5])]
    summary = say("이 청원을 한 문단으로 요약해 줘.", reply)
    with serve_gateway(db, scripted_url, world) as url:
        assert chat(url, world.a, summary) == (reply, "stop")  # clear: the normal threshold
        for piece in pieces:
            chat(url, world.a, piece)
        assert chat(url, world.a, summary) == (BLOCKED_MESSAGE, "content_filter")
        assert chat(url, world.outsider, summary) == (reply, "stop")
    events = [(e.stage, e.verdict, e.action) for e in guard_events(db)]
    assert events == [("prompt", "accumulated", "strict"), ("output", "leak", "blocked")]
