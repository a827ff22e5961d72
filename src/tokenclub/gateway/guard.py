"""The leak guard in the gateway: prompts checked before the upstream is called, replies scanned
whole or as they stream, and every decision kept as a guard event.

The index is the live one under `<home>/guard`, reopened when a new generation or segment
appears, so ingest and rebuilds reach a running gateway without a restart. Without an index
(a fresh home) there is no contributed text to protect: the guard passes everything and says
"no index" in `/healthz`.

The functions here are pure over the reply data; `app.py` calls them where the reply is made
and records the returned decisions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView
from tokenclub.guard.accumulate import Budget, reply_credits, standing, worst
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.events import Action, Stage, record_event, stopped_attempts
from tokenclub.guard.fragment_store import load_fragments, save_fragments
from tokenclub.guard.fragments import Fragment, Join
from tokenclub.guard.index import IndexParams, LiveIndex
from tokenclub.guard.indexing import guard_root
from tokenclub.guard.prompts import check_prompt
from tokenclub.guard.scanner import LeakScanner, Policy, ScanResult, StreamScanner, holdback
from tokenclub.guard.tallies import add_credits, window_totals

PromptPolicy = Literal["refuse", "strict"]
CONTENT_FILTER = "content_filter"
BLOCKED_MESSAGE = (
    "이 응답은 제공된 원문을 그대로 재현하여 차단되었습니다. "
    "(The reply was withheld: it reproduced contributed source text.)"
)
REFUSED_MESSAGE = (
    "the leak guard refused this prompt: it asks to reproduce contributed source text ({reasons})"
)
ACCUMULATED_MESSAGE = (
    "the leak guard stopped this account (all its keys): its replies copied {letters} letters of "
    "one partner's text within {window_s} s (limit {hard}); requests resume as the window moves on"
)


@dataclass(frozen=True, slots=True)
class Decision:
    """One guard decision, as `record_event` stores it."""

    stage: Stage
    verdict: str
    action: Action
    matched_length: int = 0
    partner_id: int | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptCheck:
    """What the guard does with one request: refuse it, or answer under the stricter threshold."""

    refuse: bool
    strict: bool
    decision: Decision | None
    accumulated: Decision | None = None
    message: str = ""
    earlier: tuple[Fragment, ...] = ()

    @property
    def decisions(self) -> list[Decision]:
        return [d for d in (self.decision, self.accumulated) if d is not None]


PASS = PromptCheck(refuse=False, strict=False, decision=None)


class GatewayGuard:
    """The guard one gateway worker holds: the live index and the operator's policies."""

    def __init__(
        self,
        root: Path,
        policy: Policy = "block",
        prompt_policy: PromptPolicy = "strict",
        check_every_s: float = 1.0,
        budget: Budget | None = None,
    ) -> None:
        self.budget = budget
        self.policy: Policy = policy
        self.prompt_policy: PromptPolicy = prompt_policy
        self.scanner = LeakScanner(LiveIndex(root, check_every_s))

    @classmethod
    def from_settings(cls, home: Path) -> GatewayGuard:
        """The guard of a home, with `TOKENCLUB_GUARD_POLICY`, `…_PROMPT_POLICY`, `…_ACCUMULATE_*`."""
        settings = GuardSettings()
        return cls(guard_root(home), settings.policy, settings.prompt_policy, budget=settings.budget())

    @property
    def active(self) -> bool:
        return self.scanner.current() is not None

    @property
    def watches_keys(self) -> bool:
        """Whether requests are checked against their key's accumulated copying."""
        return self.budget is not None and self.active

    def health(self) -> dict[str, Any]:
        index = self.scanner.current()
        if index is None:
            return {"status": "no index", "policy": self.policy, "prompt_policy": self.prompt_policy}
        return {
            "status": "active",
            "policy": self.policy,
            "prompt_policy": self.prompt_policy,
            "generation": index.folder.name,
            "grams": sum(segment.elements for segment in index.segments),
            "guaranteed_length": index.params.guaranteed_length(),
            "holdback": holdback(index.params),
            "accumulate": "off" if self.budget is None else asdict(self.budget),
        }

    def check_prompt(self, prompt: str) -> PromptCheck:
        """Carried contributed text or a request to reproduce it, decided by the prompt policy."""
        if not self.active:
            return PASS
        verdict = check_prompt(prompt, self.scanner)
        if not verdict.flagged:
            return PASS
        refuse = self.prompt_policy == "refuse"
        decision = Decision(
            "prompt",
            verdict.verdict,
            "refused" if refuse else "strict",
            verdict.matched_length,
            verdict.partner_id,
            verdict.reasons,
        )
        reasons = ", ".join(verdict.reasons)
        return PromptCheck(refuse, not refuse, decision, message=REFUSED_MESSAGE.format(reasons=reasons))

    def with_tally(
        self, session: Session, key: KeyView, check: PromptCheck, now: float | None = None
    ) -> PromptCheck:
        """The request's check escalated by what the key's customer copied in the window: past
        the soft budget it is answered under the strict threshold, past the hard budget refused.
        It also carries the customer's recent fragments, which the reply must not join."""
        index = self.scanner.current()
        if self.budget is None or index is None:
            return check
        moment = time.time() if now is None else now
        since = int(moment) - self.budget.window_s
        check = replace(
            check, earlier=tuple(load_fragments(session, key.customer_id, index.folder.name, since))
        )
        partner, letters = worst(window_totals(session, key.customer_id, moment, self.budget))
        state = standing(letters, self.budget)
        if state == "clear":
            return check
        stopped = state == "stopped"
        accumulated = Decision("prompt", "accumulated", "refused" if stopped else "strict", letters, partner)
        if not stopped:
            return replace(check, strict=True, accumulated=accumulated)
        message = ACCUMULATED_MESSAGE.format(
            letters=letters, window_s=self.budget.window_s, hard=self.budget.hard
        )
        return replace(check, refuse=True, accumulated=accumulated, message=message)

    def keep(
        self,
        session: Session,
        key: KeyView,
        credits: dict[int, int],
        fragments: list[Fragment],
        now: float | None = None,
    ) -> None:
        """Add a delivered reply's credits to the tally and keep its fragments (in the caller's
        transaction)."""
        index = self.scanner.current()
        if self.budget is None or index is None:
            return
        moment = time.time() if now is None else now
        add_credits(session, key.id, credits, moment, self.budget)
        save_fragments(
            session,
            key.customer_id,
            key.id,
            index.folder.name,
            fragments,
            int(moment),
            int(moment) - self.budget.window_s,
        )

    def credits(self, text: str) -> dict[int, int]:
        """Copied letters per partner in a delivered reply, for the key's tally (empty when off)."""
        index = self.scanner.current()
        if self.budget is None or index is None or not text:
            return {}
        return reply_credits(index, text, self.budget)

    def reply_credits(self, data: dict[str, Any], endpoint: str) -> dict[int, int]:
        """`credits` of what a scanned whole reply delivers, all choices together."""
        return self.credits("\n".join(_choice_text(choice, endpoint) for choice in data.get("choices") or ()))

    def scan_reply(
        self, data: dict[str, Any], endpoint: str, strict: bool, earlier: tuple[Fragment, ...] = ()
    ) -> tuple[Decision | None, list[Fragment]]:
        """Scan a whole reply in place: leaks, and with accumulation on runs that join `earlier`
        or each other, blocked or redacted by policy. Returns the decision (None when it
        passes) and the fragments of what the client gets, to keep."""
        index = self.scanner.current()
        if index is None:
            return None, []
        pieces = self._joinable(earlier)
        choices = data.get("choices") or ()
        results = [self.scanner.scan(_choice_text(choice, endpoint), strict, pieces) for choice in choices]
        for choice, result in zip(choices, results, strict=True):
            if result.leaked:
                _guard_choice(choice, endpoint, result, self.policy)
        kept = [p for r in results if not (r.leaked and self.policy == "block") for p in r.pieces]
        leaks = [result for result in results if result.leaked]
        if not leaks:
            return None, kept
        action: Action = "blocked" if self.policy == "block" else "redacted"
        return _output_decision(leaks, action, index.params), kept

    def stream(self, endpoint: str, strict: bool, earlier: tuple[Fragment, ...] = ()) -> StreamGuard | None:
        """A filter for one streamed reply, or None when there is no index to guard. With
        accumulation on, a run that joins `earlier` (or another run of the reply) is cut too."""
        if not self.active:
            return None
        return StreamGuard(self.scanner.stream(self.policy, strict, self._joinable(earlier)), endpoint, self)

    def _joinable(self, earlier: tuple[Fragment, ...]) -> list[Fragment] | None:
        """The fragments a reply's runs are tested against (its own are added as they close);
        None, and no joins, when accumulation is off."""
        return list(earlier) if self.budget is not None else None


def _choice_text(choice: dict[str, Any], endpoint: str) -> str:
    content = (choice.get("message") or {}).get("content") if endpoint == "chat" else choice.get("text")
    return content if isinstance(content, str) else ""


def _set_text(choice: dict[str, Any], endpoint: str, text: str) -> None:
    if endpoint == "chat":
        choice.setdefault("message", {})["content"] = text
    else:
        choice["text"] = text


def _guard_choice(choice: dict[str, Any], endpoint: str, result: ScanResult, policy: Policy) -> None:
    """Replace a leaking choice's text; its logprobs go too, as they spell out the same tokens."""
    if policy == "block":
        _set_text(choice, endpoint, BLOCKED_MESSAGE)
        choice["finish_reason"] = CONTENT_FILTER
    else:
        _set_text(choice, endpoint, result.redacted)
    if "logprobs" in choice:
        choice["logprobs"] = None


def _join_decision(found: list[Join], action: Action, params: IndexParams) -> Decision:
    """The event for joined pieces: the letters of the longest seam's grams (a lower bound of
    the rebuilt run) and the partner, when one owns them all."""
    partners = sorted({p for j in found for p in j.partners})
    longest = max(j.seam_grams for j in found)
    letters = params.width + (longest - 1) * params.stride
    return Decision("output", "joined", action, letters, partners[0] if len(partners) == 1 else None)


def _output_decision(results: list[ScanResult], action: Action, params: IndexParams) -> Decision:
    """The event for a stopped reply: a join when runs joined earlier pieces, else a leak."""
    joined = [j for result in results for j in result.joins]
    if joined:
        return _join_decision(joined, action, params)
    partners = sorted({p for result in results for p in result.partner_ids})
    return Decision(
        "output",
        "leak",
        action,
        max(result.matched_length for result in results),
        partners[0] if len(partners) == 1 else None,
    )


@dataclass
class StreamGuard:
    """Filters one streamed reply (n = 1) event by event.

    Text is held back until the scanner has seen enough after it (`holdback` guard letters while
    no chain of hits is open); an event whose text is all held back is dropped unless it carries
    something else (the role, a finish reason). A finish reason from the upstream first flushes
    the held-back rest. Under the block policy a leak ends the stream with `finish_reason:
    "content_filter"` before any letter of it is sent. Logprobs are dropped: they would spell
    out held-back tokens ahead of the text.
    """

    scanner: StreamScanner
    endpoint: str
    owner: GatewayGuard
    _template: dict[str, Any] | None = None
    _done: bool = False
    _sent: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.scanner.blocked

    def filter(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to send in place of one upstream event that has choices."""
        if self._done:
            return []
        self._template = event
        choice = event["choices"][0]
        text = _delta_content(choice, self.endpoint)
        released = self.scanner.feed(text) if text else ""
        self._sent.append(released)
        if self.scanner.blocked:
            self._done = True
            out = [_with_text(event, self.endpoint, released)] if released else []
            return [*out, self._closing(event)]
        if choice.get("finish_reason") is not None:
            rest = self.scanner.finish()
            self._sent.append(rest)
            released += rest
            self._done = True
            if self.scanner.blocked:  # the last run joined an earlier piece
                out = [_with_text(event, self.endpoint, released)] if released else []
                return [*out, self._closing(event)]
        if released or _carries_more(choice, self.endpoint):
            return [_with_text(event, self.endpoint, released)]
        return []

    def finish(self) -> list[dict[str, Any]]:
        """What is still held back when the upstream ends without a finish reason."""
        if self._done or self._template is None:
            return []
        self._done = True
        rest = self.scanner.finish()
        self._sent.append(rest)
        out = [_with_text(self._template, self.endpoint, rest)] if rest else []
        return [*out, self._closing(self._template)] if self.scanner.blocked else out

    def credits(self) -> dict[int, int]:
        """Copied letters per partner in what the client was sent, for the key's tally."""
        return self.owner.credits("".join(self._sent))

    def fragments(self) -> list[Fragment]:
        """Fragments of the copied runs the client was sent, to keep for the window."""
        return self.scanner.sent_pieces

    def decision(self) -> Decision | None:
        spans = self.scanner.spans
        if not spans:
            return None
        action: Action = "blocked" if self.scanner.blocked else "redacted"
        result = ScanResult(spans, "", tuple(self.scanner.joins))
        return _output_decision([result], action, self.scanner.params)

    def _closing(self, event: dict[str, Any]) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": CONTENT_FILTER}
        if self.endpoint == "chat":
            choice["delta"] = {}
        else:
            choice.update(text="", logprobs=None)
        return {k: v for k, v in event.items() if k not in ("choices", "usage")} | {"choices": [choice]}


def _delta_content(choice: dict[str, Any], endpoint: str) -> str:
    content = (choice.get("delta") or {}).get("content") if endpoint == "chat" else choice.get("text")
    return content if isinstance(content, str) else ""


def _carries_more(choice: dict[str, Any], endpoint: str) -> bool:
    if choice.get("finish_reason") is not None:
        return True
    if endpoint != "chat":
        return False
    return any(v is not None for k, v in (choice.get("delta") or {}).items() if k != "content")


def _with_text(event: dict[str, Any], endpoint: str, text: str) -> dict[str, Any]:
    choice = {k: v for k, v in event["choices"][0].items() if k != "logprobs"}
    if endpoint == "chat":
        choice["delta"] = {**(choice.get("delta") or {}), "content": text}
    else:
        choice["text"] = text
    return {**event, "choices": [choice]}


def record(session: Session, request_id: str, key: KeyView | None, decisions: list[Decision]) -> None:
    """Store the decisions made on one request (in the caller's transaction)."""
    for decision in decisions:
        record_event(
            session,
            request_id=request_id,
            stage=decision.stage,
            verdict=decision.verdict,
            action=decision.action,
            key_id=key.id if key else None,
            customer_id=key.customer_id if key else None,
            matched_length=decision.matched_length,
            partner_id=decision.partner_id,
            reasons=decision.reasons,
        )


def partner_stats(session: Session, partner_id: int) -> dict[str, Any]:
    """What a partner may see of the guard: how many attempts on its own text were stopped."""
    counts = stopped_attempts(session, partner_id)
    return {"object": "guard.stats", "partner_id": partner_id, "stopped_attempts": counts.get(partner_id, 0)}


async def close_stream(events: AsyncIterator[Any]) -> None:
    """Stop reading the upstream after a block: it stops generating what nobody will see."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
