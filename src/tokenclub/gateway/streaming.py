"""The leak guard as a wrapper around a streamed reply, any number of choices.

The guard's `StreamGuard` filters one choice; a reply with `n > 1` interleaves its choices in
the upstream's events, so each choice index gets its own filter and the events are split per
choice, filtered, and sent with their index. The wrapper also keeps what each choice generated
(text and tool calls), which is what the reply is charged by when the upstream reports no usage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tokenclub.gateway.billing import Usage
from tokenclub.gateway.formats import ApiFormat, usage_from
from tokenclub.guard.detection.coverage import Grams
from tokenclub.guard.detection.fragments import Fragment
from tokenclub.guard.service import Decision, GatewayGuard, StreamGuard


@dataclass
class ReplyStream:
    """Turns upstream events into the events the client gets."""

    fmt: ApiFormat
    model: str
    choices: int
    owner: GatewayGuard | None = None
    strict: bool = False
    earlier: tuple[Fragment, ...] = ()
    own: int | None = None  # the key's partner, when it may read its own text
    exhausted: Grams = field(default_factory=dict)  # documents at the customer's coverage limit
    last_id: str = ""
    reported: Usage | None = None
    _generated: dict[int, list[str]] = field(default_factory=dict)
    _guards: dict[int, StreamGuard | None] = field(default_factory=dict)

    def _guard(self, index: int) -> StreamGuard | None:
        if index not in self._guards:
            self._guards[index] = (
                self.owner.stream(self.fmt.kind, self.strict, self.earlier, self.own, self.exhausted)
                if self.owner
                else None
            )
        return self._guards[index]

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to send for one upstream event (none for a usage-only event)."""
        self.last_id = str(event.get("id", self.last_id))
        if self.owner is not None and (found := self.fmt.text_only(event)) is not None:
            index, text = found
            guard = self._guards.get(index)
            if guard is not None and guard.hold(event, text):
                self._generated[index].append(text)
                return []
        self.reported = usage_from(event) or self.reported
        choices = [c for c in event.get("choices") or () if isinstance(c, dict)]
        if not choices:
            return []
        event = {k: v for k, v in event.items() if k != "usage"} | {"model": self.model}
        out: list[dict[str, Any]] = []
        for choice in choices:
            index = choice["index"] if isinstance(choice.get("index"), int) else 0
            self._generated.setdefault(index, []).append(self.fmt.generated(choice, True))
            if self.owner is None:
                continue
            guard = self._guard(index)
            # Each filter sees its choice as choice 0 of a one-choice reply; `_indexed` puts the
            # choice's own index back.
            single = {**event, "choices": [{**choice, "index": 0}]}
            out.extend([single] if guard is None else _indexed(guard.filter(single), index))
        return out if self.owner is not None else [event | {"choices": choices}]

    def finish(self) -> list[dict[str, Any]]:
        """What guards still hold back when the upstream ends without finish reasons."""
        return [
            out
            for index, guard in self._guards.items()
            if guard is not None
            for out in _indexed(guard.finish(), index)
        ]

    @property
    def blocked(self) -> bool:
        """Every choice was cut by the guard: nothing more from the upstream will be sent."""
        guards = [g for g in self._guards.values() if g is not None]
        return len(guards) >= self.choices and all(g.blocked for g in guards)

    def generated(self) -> list[str]:
        """What each choice generated (as far as the upstream got)."""
        return ["".join(parts) for _, parts in sorted(self._generated.items())]

    def decisions(self) -> list[Decision]:
        return [d for g in self._guards.values() if g is not None and (d := g.decision()) is not None]

    def credits(self) -> dict[int, int]:
        """Copied letters per partner in what the client was sent, all choices together."""
        total: dict[int, int] = {}
        for guard in self._guards.values():
            for partner, letters in (guard.credits() if guard else {}).items():
                total[partner] = total.get(partner, 0) + letters
        return total

    def fragments(self) -> list[Fragment]:
        return [f for g in self._guards.values() if g is not None for f in g.fragments()]

    def grams(self) -> dict[int, frozenset[int]]:
        """The documents' grams the client was sent, all choices together (for coverage)."""
        total: dict[int, frozenset[int]] = {}
        for guard in self._guards.values():
            for doc, ordinals in (guard.grams() if guard else {}).items():
                total[doc] = total.get(doc, frozenset()) | ordinals
        return total


def _indexed(events: Iterable[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The guard writes index 0 into the events it makes; put the choice's own back."""
    out = list(events)
    for event in out:
        for choice in event.get("choices") or ():
            choice["index"] = index
    return out
