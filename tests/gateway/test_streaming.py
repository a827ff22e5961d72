"""The guard around a streamed reply of several choices: each choice filtered on its own, under
its own index; what each generated kept for metering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.gateway.test_guard import FRESH, LEAK, SPAN, build_index, chunks
from tokenclub.gateway.formats import CHAT, COMPLETIONS
from tokenclub.gateway.streaming import ReplyStream
from tokenclub.guard.service import GatewayGuard


def _event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"id": "up-1", "object": "chat.completion.chunk", "model": "upstream-name"}
    return event | {"choices": choices} | ({"usage": usage} if usage else {})


def _interleaved(texts: list[str]) -> list[dict[str, Any]]:
    """Upstream events carrying every choice's next piece together, then the finish reasons."""
    pieces = [list(chunks(text)) for text in texts]
    events = []
    for step in range(max(len(p) for p in pieces)):
        events.append(
            _event(
                [
                    {"index": i, "delta": {"content": p[step]}, "finish_reason": None}
                    for i, p in enumerate(pieces)
                    if step < len(p)
                ]
            )
        )
    events.append(_event([{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(len(texts))]))
    return events


def _by_choice(sent: list[dict[str, Any]]) -> dict[int, tuple[str, str | None]]:
    texts: dict[int, str] = {}
    finish: dict[int, str | None] = {}
    for event in sent:
        assert event["model"] == "served-name" and "usage" not in event
        (choice,) = event["choices"]
        index = choice["index"]
        texts[index] = texts.get(index, "") + (choice["delta"].get("content") or "")
        finish[index] = choice.get("finish_reason") or finish.get(index)
    return {i: (texts[i], finish[i]) for i in texts}


def test_a_leaking_choice_is_cut_and_the_others_go_on(tmp_path: Path) -> None:
    build_index(tmp_path / "guard", 1, 2)
    guard = GatewayGuard(tmp_path / "guard", "block", "strict", check_every_s=0.0)
    reply = ReplyStream(CHAT, "served-name", 2, guard)
    sent = [out for event in _interleaved([FRESH, LEAK]) for out in reply.feed(event)]
    sent += reply.finish()
    (fresh, fresh_finish), (cut, cut_finish) = _by_choice(sent)[0], _by_choice(sent)[1]
    assert (fresh, fresh_finish) == (FRESH, "stop")
    assert cut_finish == "content_filter"
    assert LEAK.startswith(cut) and SPAN[:40] not in cut
    assert not reply.blocked  # one choice of two: the upstream is still read
    (decision,) = reply.decisions()
    assert (decision.stage, decision.action, decision.partner_id) == ("output", "blocked", 1)
    assert reply.generated()[0] == FRESH


def test_without_a_guard_events_pass_whole_and_usage_is_kept() -> None:
    reply = ReplyStream(CHAT, "served-name", 2)
    first = _event(
        [
            {"index": 0, "delta": {"content": "가"}, "finish_reason": None},
            {
                "index": 1,
                "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]},
            },
        ]
    )
    (out,) = reply.feed(first)
    assert [c["index"] for c in out["choices"]] == [0, 1] and out["model"] == "served-name"
    assert reply.feed(_event([], {"prompt_tokens": 3, "completion_tokens": 4})) == []
    assert reply.reported is not None and reply.reported.completion_tokens == 4
    assert reply.generated() == ["가", "f{}"]
    assert reply.last_id == "up-1"


def _delta(content: str, **extra: Any) -> dict[str, Any]:
    return _event([{"index": 0, "delta": {"content": content}, "finish_reason": None, **extra}])


def test_an_event_that_carries_only_text_is_told_and_every_other_event_is_not() -> None:
    assert CHAT.text_only(_delta("가")) == (0, "가")
    assert CHAT.text_only(_delta("")) == (0, "")
    assert CHAT.text_only(_event([{"index": 2, "delta": {"content": "가"}}])) == (2, "가")
    scored = _delta("가", logprobs={"content": [{"token": "가", "logprob": -0.1, "top_logprobs": []}]})
    others = [
        _event([{"index": 0, "delta": {"role": "assistant", "content": "가"}, "finish_reason": None}]),
        _event([{"index": 0, "delta": {"content": "가"}, "finish_reason": "stop"}]),
        _event([{"index": 0, "delta": {"reasoning_content": "가"}, "finish_reason": None}]),
        _event([{"index": 0, "delta": {"content": "가", "tool_calls": []}, "finish_reason": None}]),
        _event([{"index": 0, "delta": {"content": None}, "finish_reason": None}]),
        _event([{"index": True, "delta": {"content": "가"}, "finish_reason": None}]),
        _event([{"index": 0, "delta": {"content": "가"}}, {"index": 1, "delta": {"content": "나"}}]),
        _event([]),
        _delta("가") | {"usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        scored,
    ]
    assert [CHAT.text_only(event) for event in others] == [None] * len(others)

    def chunk(finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": "가", "finish_reason": finish}
        return {"id": "c", "object": "text_completion", "choices": [choice]}

    assert COMPLETIONS.text_only(chunk(None)) == (0, "가")
    assert COMPLETIONS.text_only(chunk("length")) is None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A guard index the property test's examples share (built once, not per example)."""
    root = tmp_path_factory.mktemp("streaming") / "guard"
    build_index(root, 1, 2)
    return root


def _stream(texts: list[str], role: str | None, finish: bool, later: int) -> list[dict[str, Any]]:
    """Text deltas (after a role with its own text, a finish reason last), `created` 1 and
    from the `later`-th on 2, as an upstream whose clock ticks mid-stream sends them."""
    events = []
    if role is not None:
        delta = {"role": "assistant", "content": role}
        events.append(_event([{"index": 0, "delta": delta, "finish_reason": None}]) | {"created": 1})
    for position, text in enumerate(texts):
        events.append(_delta(text) | {"created": 1 if position < later else 2})
    if finish:
        events.append(_event([{"index": 0, "delta": {}, "finish_reason": "stop"}]) | {"created": 2})
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from([FRESH, LEAK, FRESH + LEAK]),
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=80),
    role=st.sampled_from([None, "", "네, "]),
    finish=st.booleans(),
    later=st.integers(0, 80),
)
@example(source=FRESH, sizes=[3, 3], role="네, ", finish=False, later=80)  # a role in the template
@example(source=FRESH, sizes=[3, 3], role=None, finish=False, later=1)  # the clock ticked
def test_held_text_deltas_send_and_count_what_filtering_every_event_does(
    guarded: Path, source: str, sizes: list[int], role: str | None, finish: bool, later: int
) -> None:
    """A text-only delta the guard only holds skips its rebuilding (`StreamGuard.hold`): what
    the client is sent, where the stream is cut, what it is charged by and what the guard
    records are the same as with every event filtered."""
    texts, start = [], 0
    for size in sizes:
        texts.append(source[start : start + size])
        start += size
    events = _stream(texts, role, finish, later)
    outcomes = []
    for held in (True, False):
        guard = GatewayGuard(guarded, "block", "strict")
        reply = ReplyStream(CHAT, "served-name", 1, guard)
        if not held:
            reply._guard(0).hold = lambda event, text: False  # type: ignore[method-assign, union-attr]
        sent: list[dict[str, Any]] = []
        for event in events:
            sent += reply.feed(event)
            if reply.blocked:
                break
        sent += reply.finish()
        sent = [{k: v for k, v in event.items() if k != "id"} for event in sent]  # each reply's own id
        decisions = [(d.stage, d.verdict, d.action, d.matched_length) for d in reply.decisions()]
        outcomes.append((sent, reply.generated(), reply.blocked, decisions, reply.credits(), reply.grams()))
    assert outcomes[0] == outcomes[1]
