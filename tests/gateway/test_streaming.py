"""The guard around a streamed reply of several choices: each choice filtered on its own, under
its own index; what each generated kept for metering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gateway.test_guard import FRESH, LEAK, SPAN, build_index, chunks
from tokenclub.gateway.formats import CHAT
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
