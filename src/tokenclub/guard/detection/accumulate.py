"""Copied letters summed across a customer's replies, so that taking text piece by piece costs.

A per-reply guard lets through every copied run shorter than the leak length. Runs that fit
together are stopped as joins (`guard/detection/fragments.py`); the rest are counted here: each delivered
reply is also scanned for *short* chains (`min_hits` stride-spaced gram hits, 31 letters with
the default index), and the letters of each chain the index gives to a partner (`attribute`),
less a small allowance per letter of the reply, are credited to (key, partner) in time buckets.
The budget is per customer (its keys summed): past the `soft` budget within the window its
replies are scanned under the strict threshold; past the `hard` budget its requests are refused.

This module is the arithmetic only (pure functions); `guard/state/tallies.py` keeps the tally in the
database and `guard/service.py` applies the standing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from tokenclub.guard.detection.scanner import LeakSpan, StreamScanner
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import guard_text

Standing = Literal["clear", "strict", "stopped"]
BUCKETS = 12  # a window is summed over this many buckets: the tally forgets in steps of 1/12


@dataclass(frozen=True, slots=True)
class Budget:
    """Letters one key may copy from one partner within `window_s` before it is watched, then stopped."""

    soft: int
    hard: int
    window_s: int
    min_hits: int = 2
    allowance: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.soft <= self.hard:
            raise ValueError(f"accumulate budgets need 0 < soft ({self.soft}) <= hard ({self.hard})")
        if self.window_s < BUCKETS:
            raise ValueError(f"accumulate window_s must be at least {BUCKETS} seconds, not {self.window_s}")
        if self.min_hits < 2:
            raise ValueError("accumulate min_hits must be at least 2 (one gram hit is chance)")
        if not 0 <= self.allowance < 1:
            raise ValueError(f"accumulate allowance must be in [0, 1), not {self.allowance}")

    @property
    def bucket_s(self) -> int:
        return math.ceil(self.window_s / BUCKETS)


def bucket_of(now: float, budget: Budget) -> int:
    """The time bucket a credit made at `now` (Unix seconds) falls into."""
    return int(now // budget.bucket_s)


def first_live_bucket(now: float, budget: Budget) -> int:
    """The oldest bucket still inside the window ending at `now`."""
    return bucket_of(now, budget) - BUCKETS + 1


def credits(spans: Iterable[LeakSpan], letters: int, allowance: float) -> dict[int, int]:
    """Copied letters per partner in one reply of `letters` guard letters, less the reply's
    allowance (`allowance × letters`: ordinary replies share stock phrases with the corpus, a
    reply made of one copied sentence is nearly all copy). A run the index gives to several
    partners counts for each; one it cannot attribute counts for none (chance chains mostly
    fail attribution)."""
    copied: dict[int, int] = {}
    for span in spans:
        for partner in span.partner_ids:
            copied[partner] = copied.get(partner, 0) + span.matched
    forgiven = allowance * letters
    return {p: n - math.floor(forgiven) for p, n in copied.items() if n > forgiven}


def reply_credits(index: GuardIndex, text: str, budget: Budget) -> dict[int, int]:
    """`credits` of a delivered reply: every chain of at least `min_hits` hits, however short."""
    params = replace(index.params, hits=budget.min_hits, strict_hits=budget.min_hits)
    scanner = StreamScanner(index, params, "redact")
    scanner.feed(text)
    scanner.finish()
    return credits(scanner.spans, len(guard_text(text)), budget.allowance)


def worst(totals: Mapping[int, int]) -> tuple[int | None, int]:
    """The partner with the most letters copied by the key in the window, and that count."""
    if not totals:
        return None, 0
    partner = max(sorted(totals), key=lambda p: totals[p])
    return partner, totals[partner]


def standing(letters: int, budget: Budget) -> Standing:
    if letters >= budget.hard:
        return "stopped"
    if letters >= budget.soft:
        return "strict"
    return "clear"
