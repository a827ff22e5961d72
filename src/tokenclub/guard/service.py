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
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView
from tokenclub.db.schema import Customer
from tokenclub.guard.config import guard_settings
from tokenclub.guard.detection.accumulate import Budget, reply_credits, standing, worst
from tokenclub.guard.detection.coverage import (
    CappedGrams,
    CappedStream,
    Deliveries,
    Grams,
    Limits,
    capping_letters,
    covered_letters,
    reply_grams,
    reply_runs,
)
from tokenclub.guard.detection.coverage import standing as coverage_standing
from tokenclub.guard.detection.fragments import Fragment, Join
from tokenclub.guard.detection.lookalike import load_tables
from tokenclub.guard.detection.neighbours import ends_of
from tokenclub.guard.detection.prompts import check_prompt
from tokenclub.guard.detection.replies import (
    TOOL_NAME_MAX,
    Channel,
    Endpoint,
    channels,
    clean_chunk,
    clean_reply,
    created,
    set_channel,
)
from tokenclub.guard.detection.scanner import LeakScanner, Policy, ScanResult, holdback
from tokenclub.guard.detection.views import ViewScanner
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, LiveIndex
from tokenclub.guard.indexing.parts import guard_root
from tokenclub.guard.state.coverage_store import (
    add_grams,
    cap_document,
    capped_documents,
    customer_grams,
    document_grams,
    drop_hold,
    forget_stale_holds,
    live_holds,
    lock_customer,
    release_rider,
)
from tokenclub.guard.state.customer_state import (
    Admission,
    admission_rider,
    from_rider,
    kept_state,
    read_admission,
)
from tokenclub.guard.state.events import (
    EXHAUSTED,
    STRIKES,
    Action,
    Stage,
    blocks_by_document,
    record_event,
    stopped_attempts,
)
from tokenclub.guard.state.fragment_store import load_fragments, save_fragments
from tokenclub.guard.state.tallies import add_credits, window_totals
from tokenclub.ledger.posting import Rider

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
COVERAGE_MESSAGE = (
    "the leak guard stopped this account (all its keys): it has been sent {letters} letters of one "
    "contributed document (limit {limit}); requests resume as the coverage window moves on"
)
CAPPED_MESSAGE = (
    "the leak guard stopped this account (all its keys): a contributed document it holds pieces of "
    "has been sent to customers past its limit; requests resume as the coverage window moves on"
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
    own_partner: int | None = None  # the key's partner, when it may read its own text
    coverage: Decision | None = None
    hold: int | None = None  # the coverage hold to release when the reply is tallied
    exhausted: Grams = field(default_factory=dict)  # documents at the customer's limit → its grams of them

    @property
    def decisions(self) -> list[Decision]:
        return [d for d in (self.decision, self.accumulated, self.coverage) if d is not None]


PASS = PromptCheck(refuse=False, strict=False, decision=None)

_ATTEMPTS_KEPT = 1024  # whole replies blocked for a capped document, awaiting their tally
_CAPPED_TAIL = 200  # characters already sent that a streamed release is checked with
_GRAM_CONTEXT = 100  # characters before a stream's new text that a gram ending in it may start in


@dataclass
class _Capped:
    """The capped documents as this worker last read them (`guard_capped_documents`)."""

    version: tuple[int, int] | None = None
    generation: str = ""
    docs: dict[int, int] = field(default_factory=dict)  # document → when it was capped
    grams: CappedGrams | None = None
    # with a customer's exhausted documents (not capped) added, by those documents
    closed: dict[frozenset[int], CappedGrams] = field(default_factory=dict)


_CLOSED_KEPT = 64  # sets of exhausted documents whose grams a worker keeps ready


_WARM_UP = "가나다라 마바사 " * 8 + "abc 123"


class GatewayGuard:
    """The guard one gateway worker holds: the live index and the operator's policies."""

    def __init__(
        self,
        root: Path,
        policy: Policy = "block",
        prompt_policy: PromptPolicy = "strict",
        check_every_s: float = 1.0,
        budget: Budget | None = None,
        own_text: bool = False,
        limits: Limits | None = None,
        stream_batch: int | None = None,
        leak_letters: int = 0,
        join_letters: int = 0,
        join_share: float = 0.0,
    ) -> None:
        """`leak_letters`: NFKC letters a copied run must also hold to be a leak (0: the index's
        guard letters alone decide; `TOKENCLUB_GUARD_LEAK_LETTERS`); `join_letters`: the same for
        a run joined across replies by coverage (`TOKENCLUB_GUARD_COVERAGE_JOIN_LETTERS`), with
        `join_share` of a document stopping such a run all the same (`…_COVERAGE_JOIN_SHARE`)."""
        self.join_letters = join_letters
        self.join_share = join_share
        self.budget = budget
        self.limits = limits
        self.own_text = own_text
        self._partners: dict[int, int | None] = {}  # customer → partner (fixed once created)
        self.policy: Policy = policy
        self.prompt_policy: PromptPolicy = prompt_policy
        self.scanner = LeakScanner(
            LiveIndex(root, check_every_s), stream_batch=stream_batch, leak_letters=leak_letters
        )
        self._capped = _Capped()
        self._attempts: dict[str, dict[int, frozenset[int]]] = {}  # reply id → capped grams asked for
        self._delivered: dict[str, dict[int, frozenset[int]]] = {}  # reply id → grams its scan found
        self._quiet: dict[str, bool] = {}  # reply id → its scan found no counted gram in one text
        self._deliveries: Deliveries | None = None

    def warm(self) -> None:
        """Load the views' reading tables and the compiled loops now (a server calls it in the
        background at start): about 0.5 s, several seconds where the loops are not compiled
        yet, which the first reply would otherwise wait for."""
        load_tables()
        self.scanner.inspect(_WARM_UP)

    @classmethod
    def from_settings(cls, home: Path) -> GatewayGuard:
        """The guard of a home, with `TOKENCLUB_GUARD_POLICY`, `…_PROMPT_POLICY`, `…_ACCUMULATE_*`,
        `…_STREAM_BATCH` and the rest of `GuardSettings`."""
        settings = guard_settings()
        return cls(
            guard_root(home),
            settings.policy,
            settings.prompt_policy,
            budget=settings.budget(),
            own_text=settings.own_text,
            limits=settings.limits(),
            stream_batch=settings.stream_batch,
            leak_letters=settings.leak_letters,
            join_letters=settings.coverage_join_letters,
            join_share=settings.coverage_join_share,
        )

    @property
    def active(self) -> bool:
        return self.scanner.current() is not None

    @property
    def watches_keys(self) -> bool:
        """Whether requests are checked against their key: its accumulated copying, and whose
        partner it belongs to (a partner may read its own text)."""
        return (self.budget is not None or self.limits is not None or self.own_text) and self.active

    def _partner_of(self, session: Session, customer_id: int) -> int | None:
        if customer_id not in self._partners:
            self._partners[customer_id] = session.scalar(
                select(Customer.partner_id).where(Customer.id == customer_id)
            )
        return self._partners[customer_id]

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
            "coverage": "off" if self.limits is None else asdict(self.limits),
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

    def admission_rider(self, customer_id: int) -> Rider | None:
        """The admission's first read and coverage hold (`with_tally`) as writes that go with
        the ledger hold's posting (PostgreSQL); None when coverage is off."""
        if not self._covering(self.scanner.current()):
            return None
        return admission_rider(customer_id, int(time.time()))

    def _covering(self, index: GuardIndex | None) -> bool:
        """Whether coverage is counted on `index`: limits set, and a document table to count by."""
        return self.limits is not None and index is not None and index.docs.present

    def with_tally(
        self,
        session: Session,
        key: KeyView,
        check: PromptCheck,
        now: float | None = None,
        first: tuple[Any, ...] | None = None,
    ) -> PromptCheck:
        """The request's check escalated by what the key's customer copied in the window: past
        the soft budget it is answered under the strict threshold, past the hard budget or its
        coverage of a document refused. It also carries the customer's recent fragments, which
        the reply must not join, and the coverage hold an admitted request reserves.

        One statement reads whether the customer has state in any window (and adds the hold),
        or `first` holds what `admission_rider` returned; only then are its grams, holds,
        fragments and tallies read."""
        moment = time.time() if now is None else now
        index = self.scanner.current()
        if index is None:
            return check
        if self.own_text:
            check = replace(check, own_partner=self._partner_of(session, key.customer_id))
        coverage = self._covering(index)
        if first is not None:
            admission = from_rider(first)
        else:
            admission = read_admission(session, key.customer_id, int(moment), hold=coverage)
        checked = replace(check, hold=admission.hold)
        if coverage:
            checked = self._with_coverage(session, key, checked, admission, int(moment))
        if not checked.refuse and self.budget is not None:
            checked = self._with_budget(session, key, checked, admission, moment, index)
        if checked.refuse and admission.hold is not None:
            drop_hold(session, admission.hold)
            checked = replace(checked, hold=None)
        return checked

    def _with_budget(
        self,
        session: Session,
        key: KeyView,
        check: PromptCheck,
        admission: Admission,
        moment: float,
        index: GuardIndex,
    ) -> PromptCheck:
        assert self.budget is not None
        since = int(moment) - self.budget.window_s
        if not admission.active(since):
            return replace(check, earlier=())
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

    def _with_coverage(
        self, session: Session, key: KeyView, check: PromptCheck, admission: Admission, now: int
    ) -> PromptCheck:
        """Hand the reply's scan the documents the customer may get no more of (past its coverage,
        or capped and held or asked for), with its grams of them; refuse it once `strikes`
        replies were blocked for one such document. Its grams and holds are read in the
        admission's transaction with the customer's row locked, so concurrent admissions count
        each other's holds (this request's own hold, added by `read_admission`, is not counted).
        A customer without state in the window holds no document, so nothing of it is read. The
        capped set is refreshed here for the reply's scan."""
        index = self.scanner.current()
        limits = self.limits
        assert index is not None and limits is not None
        capped = self._refresh_capped(session, index, admission.capped_version, now)
        since = now - limits.window_s
        if not admission.active(since):
            return check
        lock_customer(session, key.customer_id)
        mine, asked = customer_grams(session, key.customer_id, index.folder.name, since)
        holds = live_holds(session, key.customer_id, now - limits.hold_s) - (admission.hold is not None)
        lengths = {doc: index.docs.letters(doc) for doc in mine}
        frozen = {doc: frozenset(v) for doc, v in mine.items()}
        reserved = holds * limits.reserve
        found = coverage_standing(frozen, capped, reserved, index.params, lengths, limits, asked)
        if not found.limited:
            return check
        if not self._struck_out(session, key.customer_id, found.limited, since, limits.strikes):
            # its replies are blocked only for more of those documents
            return replace(check, exhausted={doc: frozen.get(doc, frozenset()) for doc in found.limited})
        own = found.doc is not None and found.letters >= found.limit
        doc = found.doc if own or not found.capped else found.capped[0]
        partner = index.docs.partner(doc) if doc is not None else None
        verdict = "coverage" if own else "coverage_capped"
        decision = Decision("prompt", verdict, "refused", found.letters, partner, (f"document {doc}",))
        message = COVERAGE_MESSAGE.format(letters=found.letters, limit=found.limit) if own else CAPPED_MESSAGE
        return replace(check, refuse=True, coverage=decision, message=message)

    @staticmethod
    def _struck_out(session: Session, customer: int, docs: Sequence[int], since: int, strikes: int) -> bool:
        """Whether the customer is refused for its blocks on documents it may get no more of:
        `strikes` of them on one document, or one once that document was blocked `strikes` times
        for all customers together (many accounts collecting it, each with a strike or two)."""
        blocks = blocks_by_document(session, STRIKES, datetime.fromtimestamp(since, UTC), documents=docs)
        for doc in docs:
            own = blocks.get((customer, doc), 0)
            every = sum(count for (_, place), count in blocks.items() if place == doc)
            if own >= strikes or (own and every >= strikes):
                return True
        return False

    def _refresh_capped(
        self, session: Session, index: GuardIndex, version: tuple[int, int], now: int
    ) -> frozenset[int]:
        """The capped documents of the live generation, reloaded (with their grams) when the
        table changed (`version`, read with the admission), the generation changed, or a cap
        left the window."""
        assert self.limits is not None
        since = now - self.limits.window_s
        cache = self._capped
        expired = any(capped_s < since for capped_s in cache.docs.values())
        if version != cache.version or cache.generation != index.folder.name or expired:
            docs = capped_documents(session, index.folder.name, since) if version[0] else {}
            grams = CappedGrams(index, docs) if docs else None
            self._capped = _Capped(version, index.folder.name, docs, grams)
        return frozenset(self._capped.docs)

    def _closed(self, exhausted: Collection[int] = ()) -> CappedGrams | None:
        """The grams refused to a reply whose customer is at its limit of `exhausted`: the capped
        documents' and those documents', both read whole or all but an end letter, so a lone
        collector past its limit gets no more than the cap would give it; None when there are
        none."""
        cache, index = self._capped, self.scanner.current()
        if index is None or cache.generation != index.folder.name:
            return None
        mine = frozenset(exhausted).difference(cache.docs)
        if not mine:
            return cache.grams
        grams = cache.closed.get(mine)
        if grams is None:
            grams = _put(cache.closed, mine, CappedGrams(index, {*cache.docs, *mine}), _CLOSED_KEPT)
        return grams

    def closing(self, exhausted: Collection[int] = ()) -> bool:
        """Whether replies are checked for closed documents' grams (`_closed`)."""
        return bool(self._closed(exhausted))

    def closed_hits(
        self, text: str, own: int | None = None, exhausted: Grams | None = None
    ) -> dict[int, frozenset[int]]:
        """The grams of closed documents (capped, or `exhausted` for this customer) that `text`
        carries, whole or all but an end letter, and its customer does not hold already, except
        the reader's own partner's."""
        grams = self._closed(exhausted or {})
        return self._not_own(grams.hits(text), own, exhausted) if grams else {}

    def closed_feed(
        self, carry: CappedStream, text: str, own: int | None = None, exhausted: Grams | None = None
    ) -> dict[int, frozenset[int]]:
        """`closed_hits` for a streamed piece read on from `carry` (`CappedGrams.feed`)."""
        grams = self._closed(exhausted or {})
        return self._not_own(grams.feed(carry, text), own, exhausted) if grams else {}

    def _not_own(self, hits: Grams, own: int | None, held: Grams | None) -> dict[int, frozenset[int]]:
        index = self.scanner.current()
        if index is None:  # the index went away since the look-up: nothing to attribute
            return {}
        return {
            doc: ordinals
            for doc, ordinals in beyond(hits, held or {}).items()
            if own is None or index.docs.partner(doc) != own
        }

    def closed_decision(self, hits: Grams) -> tuple[Decision, Grams]:
        """The event of a reply refused for grams of closed documents, and the grams it counts as
        asked for: a capped document's (the customer asked for them); none for a document only
        its customer is at its limit of (the block is its strike)."""
        capped = {doc: ordinals for doc, ordinals in hits.items() if doc in self._capped.docs}
        if capped:
            return self.capped_decision(capped), capped
        return self._document_decision(EXHAUSTED, hits), {}

    def capped_decision(self, hits: Grams) -> Decision:
        """The event of a reply refused for carrying grams of a capped document."""
        return self._document_decision("capped", hits)

    def _document_decision(self, verdict: str, hits: Grams) -> Decision:
        """The event of a reply blocked for grams of one document (the first of `hits`): the
        letters they cover and the document's partner."""
        index = self.scanner.current()
        doc = min(hits)
        params = index.params if index is not None else IndexParams.for_leak_length(seed=0)
        letters = covered_letters(hits[doc], params, 1 << 62)
        partner = index.docs.partner(doc) if index is not None else None
        return Decision("output", verdict, "blocked", letters, partner, (f"document {doc}",))

    def joined(
        self,
        reply: str,
        text: str,
        own: int | None = None,
        quiet: bool = False,
        whole: str | None = None,
        with_ends: bool = True,
        exhausted: Grams | None = None,
    ) -> tuple[Decision | None, Grams]:
        """Whether `text`, about to be sent as part of `reply`, joins other replies' pieces of a
        document (any customer's, sent or in flight) into a leak (`Deliveries`), its own grams
        or, beside other replies' runs, its ends (`guard/detection/neighbours.py`): the decision
        to block it, or None; and the grams of it that coverage counts (`reply_runs`; all its
        grams are kept as in flight for the joins). `quiet`: the scan found no counted
        gram in `text`, so only its ends are looked at; `whole`: the reply's text so far, whose
        ends are kept (default `text`), unless `with_ends` is off (a stream between its first and
        last check). `exhausted`: the documents the customer is at its limit of, with its grams of
        them; a text that carries any other gram of one is blocked, and adds nothing to coverage
        (its event is a strike). The grams are returned when it is blocked for a join too: it asked
        for them, and coverage counts them as taken. Nothing is looked up when coverage is off."""
        index = self.scanner.current()
        limits = self.limits
        if limits is None or index is None or not index.docs.present or not text:
            return None, {}
        grams, edges, taken = ({}, [], {}) if quiet else reply_runs(index, text, own)
        deliveries = self._deliveries_of(index, limits)
        ends = ends_of(text if whole is None else whole, index.params) if with_ends else None
        now = time.time()
        held = exhausted or {}
        more = beyond({doc: taken[doc] for doc in taken.keys() & held.keys()}, held)
        if more:  # more of a document the customer is at its limit of
            deliveries.attempt(reply, edges, now)
            return self._document_decision(EXHAUSTED, more), {}  # none went out: the event is the strike
        capped = self._capped.docs if self._capped.generation == index.folder.name else {}
        # a piece too short to carry a gram, asked for beside another reply's run of a document
        # the customer may get no more of, is seen as for a capped one
        refusal = deliveries.claim(reply, grams, now, ends, edges, own, index, {*capped, *held})
        if refusal is None:
            return None, taken
        deliveries.attempt(reply, edges, now)
        if refusal.capped and refusal.doc not in capped:  # beside a run of an exhausted document
            return self._document_decision(EXHAUSTED, {refusal.doc: refusal.capped}), {}
        if refusal.capped:  # a piece beside one of a capped document: capped too, counted as asked
            asked = {refusal.doc: refusal.capped}
            return self.capped_decision(asked), asked
        return self._document_decision("joined", {refusal.doc: grams.get(refusal.doc, frozenset())}), taken

    def _deliveries_of(self, index: GuardIndex, limits: Limits) -> Deliveries:
        deliveries = self._deliveries
        if deliveries is None or deliveries.generation != index.folder.name:
            deliveries = self._deliveries = Deliveries(
                index.folder.name,
                index.params,
                limits.join_s,
                leak_letters=self.join_letters,
                join_share=self.join_share,
            )
        return deliveries

    def attempted(self, reply: str, text: str, own: int | None = None) -> None:
        """Remember where `text`, refused for carrying a capped document, ran in it, so that a
        piece asked for beside it is refused too (`Deliveries.attempt`; a reply refused for a
        join is remembered by `joined`)."""
        index, limits = self.scanner.current(), self.limits
        if limits is None or index is None or not index.docs.present or not text:
            return
        edges = reply_runs(index, text, own)[1]
        self._deliveries_of(index, limits).attempt(reply, edges, time.time())

    def grams(self, text: str, own: int | None = None) -> dict[int, frozenset[int]]:
        """The documents' grams a delivered text carries, for coverage (empty when off)."""
        index = self.scanner.current()
        if self.limits is None or index is None or not text:
            return {}
        return reply_grams(index, text, own)

    def reply_grams(
        self, data: dict[str, Any], endpoint: str, own: int | None = None
    ) -> dict[int, frozenset[int]]:
        """`grams` of what a scanned whole reply delivers, every channel of every choice."""
        texts = [
            t for choice in data.get("choices") or () for t in channels(choice, _endpoint(endpoint)).values()
        ]
        scanned = self._delivered.pop(str(data.get("id", "")), None)
        found = self.grams("\n".join(texts), own) if scanned is None else dict(scanned)
        for doc, ordinals in self._attempts.pop(str(data.get("id", "")), {}).items():
            found[doc] = found.get(doc, frozenset()) | ordinals
        return found

    def keep_coverage(
        self, session: Session, key: KeyView, grams: Grams, hold: int | None, now: float | None = None
    ) -> list[Decision]:
        """Keep a delivered reply's grams, release its hold, and return an operator alert for
        each document this reply took past the document cap (in the caller's transaction)."""
        index = self.scanner.current()
        limits = self.limits
        if limits is None or index is None:
            return []
        moment = int(time.time() if now is None else now)
        since = moment - limits.window_s
        if hold is not None:
            drop_hold(session, hold)
        if not grams:
            return []
        forget_stale_holds(session, key.customer_id, moment - limits.hold_s)
        kept_state(session, key.customer_id, moment)
        docs = sorted(grams)
        before = document_grams(session, index.folder.name, docs, since)
        partners = {doc: index.docs.partner(doc) for doc in docs}
        # a capped document's grams in a tallied reply were refused (or slipped past a stale cache)
        refused = frozenset(doc for doc in docs if doc in self._capped.docs)
        generation = index.folder.name
        add_grams(session, key.customer_id, key.id, generation, grams, partners, moment, since, refused)
        alerts: list[Decision] = []
        for doc in docs:
            letters = index.docs.letters(doc)
            cap = limits.document_letters(letters)
            earlier = before.get(doc, {})
            after = {**earlier, key.customer_id: earlier.get(key.customer_id, set()) | grams[doc]}
            old = capping_letters(earlier, index.params, letters, limits.floor)
            new = capping_letters(after, index.params, letters, limits.floor)
            if old < cap <= new:
                cap_document(session, index.folder.name, doc, partners[doc], letters, moment, since)
                self._capped = replace(self._capped, version=None)  # reloaded at the next admission
                reasons = (f"document {doc}", f"letters {letters}", f"cap {cap}")
                alerts.append(Decision("output", "document_capped", "logged", new, partners[doc], reasons))
        return alerts

    @staticmethod
    def hold_rider(hold: int) -> Rider:
        """The release of a request's coverage hold as a write that goes with its charge in the
        ledger's one statement (PostgreSQL); `keep_coverage` releases a hold that did not."""
        return release_rider(hold)

    def keep(
        self,
        session: Session,
        key: KeyView,
        credits: dict[int, int],
        fragments: list[Fragment],
        now: float | None = None,
    ) -> None:
        """Add a delivered reply's credits to the tally and keep its fragments (in the caller's
        transaction); a reply that carried neither writes nothing."""
        index = self.scanner.current()
        if self.budget is None or index is None or not (credits or fragments):
            return
        moment = time.time() if now is None else now
        kept_state(session, key.customer_id, int(moment))
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

    def credits(self, text: str, own: int | None = None) -> dict[int, int]:
        """Copied letters per partner in a delivered reply, for the key's tally (empty when off);
        the reader's own text (`own`) is not counted."""
        index = self.scanner.current()
        if self.budget is None or index is None or not text:
            return {}
        return {p: n for p, n in reply_credits(index, text, self.budget).items() if p != own}

    def reply_credits(self, data: dict[str, Any], endpoint: str, own: int | None = None) -> dict[int, int]:
        """`credits` of what a scanned whole reply delivers, every channel of every choice (none
        when its scan found no counted gram in its one text)."""
        if self._quiet.pop(str(data.get("id", "")), False):
            return {}
        texts = [
            t for choice in data.get("choices") or () for t in channels(choice, _endpoint(endpoint)).values()
        ]
        return self.credits("\n".join(texts), own)

    def scan_reply(
        self,
        data: dict[str, Any],
        endpoint: str,
        strict: bool,
        earlier: tuple[Fragment, ...] = (),
        own: int | None = None,
        exhausted: Grams | None = None,
    ) -> tuple[Decision | None, list[Fragment]]:
        """Rebuild a whole reply in place from its allow-listed fields and scan every text channel
        of every choice: leaks, and with accumulation on runs that join `earlier` or each other
        (across channels too), blocked or redacted by policy. Returns the decision (None when it
        passes) and the fragments of what the client gets, to keep. `own`: the reader's partner,
        whose own text passes; `exhausted`: the documents its customer is at its limit of
        (`joined`)."""
        kind = _endpoint(endpoint)
        clean = clean_reply(data, kind, _reply_id(kind))
        data.clear()
        data.update(clean)
        index = self.scanner.current()
        if index is None:
            return None, []
        pieces = self._joinable(earlier)
        results: list[ScanResult] = []
        kept: list[Fragment] = []
        asked: dict[int, frozenset[int]] = {}
        joined: Decision | None = None
        struck: Decision | None = None  # more of a document its customer is at its limit of
        delivered: dict[int, frozenset[int]] = {}
        for choice in data["choices"]:
            found = {
                channel: self.scanner.inspect(text, strict, pieces, own)
                for channel, text in channels(choice, kind).items()
            }
            results += found.values()
            if any(result.leaked for result in found.values()):
                _guard_choice(choice, kind, found, self.policy)
                if self.policy == "block":
                    continue
            text = "\n".join(channels(choice, kind).values())  # as sent: redacted by now under "redact"
            hits = self.closed_hits(text, own, exhausted)
            if hits:  # a closed document is refused, whatever the policy
                _guard_choice(choice, kind, {}, "block")
                closed, more = self.closed_decision(hits)
                asked = {doc: asked.get(doc, frozenset()) | more[doc] for doc in asked.keys() | more.keys()}
                struck = struck or (None if more else closed)
                self.attempted(str(data["id"]), text, own)
                continue
            if self.limits is not None:
                join, grams = self.joined(
                    str(data["id"]), text, own, quiet=_quiet(found), exhausted=exhausted
                )
                for doc, ordinals in grams.items():  # blocked for a join, it still counts as taken
                    delivered[doc] = delivered.get(doc, frozenset()) | ordinals
                if join is not None:  # it would complete a leak with other replies' pieces
                    _guard_choice(choice, kind, {}, "block")
                    joined = joined or join
                    continue
            kept += [p for result in found.values() for p in result.pieces]
        if asked:
            _put(self._attempts, str(data["id"]), asked, _ATTEMPTS_KEPT)
        if self.limits is not None:
            _put(self._delivered, str(data["id"]), delivered, _ATTEMPTS_KEPT)
        if len(data["choices"]) == 1 and _quiet(found):
            _put(self._quiet, str(data["id"]), True, _ATTEMPTS_KEPT)
        leaks = [result for result in results if result.leaked]
        if not leaks:
            return (self.capped_decision(asked) if asked else struck or joined), kept
        action: Action = "blocked" if self.policy == "block" else "redacted"
        return _output_decision(leaks, action, index.params), kept

    def stream(
        self,
        endpoint: str,
        strict: bool,
        earlier: tuple[Fragment, ...] = (),
        own: int | None = None,
        exhausted: Grams | None = None,
    ) -> StreamGuard:
        """A filter for one streamed reply (its events rebuilt from allow-listed fields, every
        channel scanned). With accumulation on, a run that joins `earlier` (or another run of
        the reply, in any channel) is cut too, and so is more of a document its customer is at its
        limit of (`exhausted`). Without an index it only rebuilds the events."""
        kind = _endpoint(endpoint)
        held = dict(exhausted or {})
        return StreamGuard(self, kind, strict, self._joinable(earlier), _reply_id(kind), own, held)

    def _joinable(self, earlier: tuple[Fragment, ...]) -> list[Fragment] | None:
        """The fragments a reply's runs are tested against (its own are added as they close);
        None, and no joins, when accumulation is off."""
        return list(earlier) if self.budget is not None else None


_K = TypeVar("_K")
_V = TypeVar("_V")


def _put(kept: dict[_K, _V], key: _K, value: _V, limit: int) -> _V:
    """Keep `value` under `key`, forgetting the oldest entries past `limit`; returns `value`."""
    kept[key] = value
    while len(kept) > limit:
        kept.pop(next(iter(kept)))
    return value


def beyond(hits: Grams, held: Grams) -> dict[int, frozenset[int]]:
    """The grams of `hits` that the customer does not hold already (`held`): resending what it was
    sent takes nothing more of a document."""
    more = {doc: ordinals - held.get(doc, frozenset()) for doc, ordinals in hits.items()}
    return {doc: ordinals for doc, ordinals in more.items() if ordinals}


def _quiet(found: dict[Channel, ScanResult]) -> bool:
    """Whether a choice is one text that holds no counted gram (`ScanResult.quiet`): its joins,
    grams and credits are then empty without reading it again. Several texts are read joined,
    where a gram may span two of them, so they are read."""
    return len(found) == 1 and next(iter(found.values())).quiet


def _endpoint(endpoint: str) -> Endpoint:
    return "chat" if endpoint == "chat" else "completions"


def _reply_id(endpoint: Endpoint) -> str:
    return f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def _guard_choice(
    choice: dict[str, Any], endpoint: Endpoint, found: dict[Channel, ScanResult], policy: Policy
) -> None:
    """A leaking choice: under `block` only the notice is left (no tool calls, reasoning or
    logprobs); under `redact` each leaking channel loses its leaks. Logprobs go either way, as
    they spell out the same tokens."""
    choice["logprobs"] = None
    if policy == "block":
        if endpoint == "chat":
            choice["message"] = {"role": "assistant", "content": BLOCKED_MESSAGE}
        else:
            choice["text"] = BLOCKED_MESSAGE
        choice["finish_reason"] = CONTENT_FILTER
        return
    for channel, result in found.items():
        if result.leaked:
            set_channel(choice, endpoint, channel, result.redacted)


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


_TEXT_CHANNEL: dict[Endpoint, Channel] = {"chat": ("content",), "completions": ("text",)}


@dataclass
class StreamGuard:
    """Filters one streamed reply (n = 1) event by event, each text channel on its own scanner.

    Every event is rebuilt from its allow-listed fields (`guard/detection/replies.py`). Each channel
    (content, reasoning, refusal, each tool call's arguments, a completion's text) is held back
    by its scanner until enough has followed it (`holdback` guard letters while no chain of hits
    is open); tool and function names are short (at most `TOOL_NAME_MAX` characters, a longer
    one ends the stream as malformed) and are scanned whole as they arrive, so a call's name and
    id go out with its first delta. The channels share the reply's fragments, so pieces split
    across channels join. Under the block policy a leak in any channel ends the stream with
    `finish_reason: "content_filter"` before any letter of it is sent; a finish reason from
    the upstream first flushes every channel. An event with nothing released and nothing else
    to say (role, a new tool call, a finish reason) is dropped. While documents are closed to it
    (capped, or at its customer's limit), what a channel is about to release is checked (with
    the tail already sent) for their grams, and the stream ends instead of sending it.
    """

    owner: GatewayGuard
    endpoint: Endpoint
    strict: bool
    pieces: list[Fragment] | None
    reply_id: str
    own: int | None = None
    exhausted: dict[int, frozenset[int]] = field(default_factory=dict)  # grows with what it sends
    _scanners: dict[Channel, ViewScanner] = field(default_factory=dict)
    _names: dict[Channel, str] = field(default_factory=dict)
    _name_results: list[ScanResult] = field(default_factory=list)
    _sent: dict[Channel, list[str]] = field(default_factory=dict)
    _template: dict[str, Any] | None = None
    _done: bool = False
    _blocked: bool = False
    _malformed: bool = False
    _capped: Decision | None = None
    _asked: dict[int, frozenset[int]] = field(default_factory=dict)  # capped or joined grams it was refused
    _carry: dict[Channel, CappedStream] = field(default_factory=dict)  # for `closed_feed`
    _joined: Decision | None = None
    _received: dict[Channel, str] = field(default_factory=dict)  # each channel's text, held back too
    _looked: dict[Channel, int] = field(default_factory=dict)  # how much of it `_joins` read

    @property
    def blocked(self) -> bool:
        return self._blocked

    def filter(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to send in place of one upstream event that has choices."""
        if self._done:
            return []
        clean = clean_chunk(event, self.endpoint, self.reply_id)
        if not clean["choices"]:
            return []
        self._template = clean
        choice = clean["choices"][0]
        released: dict[Channel, str] = {}
        for channel, text in channels(choice, self.endpoint).items():
            if channel[-1] == "name":
                name = self._name(channel, text)
                if name is None:
                    return self._stop(clean, released)
                released[channel] = name
                continue
            scanner = self._scanner(channel)
            self._received[channel] = self._received.get(channel, "") + text
            released[channel] = scanner.feed(text)
            if scanner.blocked:
                return self._stop(clean, released)
        if choice.get("finish_reason") is not None:
            self._done = True
            for channel, scanner in self._scanners.items():
                released[channel] = released.get(channel, "") + scanner.finish()
                if scanner.blocked:
                    return self._stop(clean, released)
        if self._carries_closed(released) or self._joins(released):
            return self._stop(clean, {})
        out = self._event(clean, released, keep_finish=True)
        return [out] if out is not None else []

    def hold(self, event: dict[str, Any], text: str) -> bool:
        """Take the next text of the reply's one text channel, from an event that carries
        nothing else (`ApiFormat.text_only`), when its scanner only holds it (no scan is due
        before its end) and the event would leave the stream's template as it is: then
        `filter` would send nothing for it and change nothing but what is held, and its
        rebuilding (a few µs an event, most events of a stream) is skipped. False: `filter` it."""
        template = self._template
        if self._done or template is None or template["created"] != created(event):
            return False
        if self.endpoint == "chat" and template["choices"][0]["delta"].keys() - {"content"}:
            return False  # the template says more than text (a role, a call): it must be replaced
        channel = _TEXT_CHANNEL[self.endpoint]
        scanner = self._scanners.get(channel)
        if scanner is None or len(text) >= scanner.room:
            return False
        if text:
            scanner.feed(text)
            self._received[channel] += text
        return True

    def finish(self) -> list[dict[str, Any]]:
        """What is still held back when the upstream ends without a finish reason."""
        if self._done or self._template is None:
            return []
        self._done = True
        released: dict[Channel, str] = {}
        for channel, scanner in self._scanners.items():
            released[channel] = scanner.finish()
            if scanner.blocked:
                return self._stop(self._template, released)
        if self._carries_closed(released) or self._joins(released):
            return self._stop(self._template, {})
        out = self._event(self._template, released, keep_finish=False)
        return [out] if out is not None else []

    def credits(self) -> dict[int, int]:
        """Copied letters per partner in what the client was sent (all channels), for the tally."""
        return {} if self._quiet() else self.owner.credits(self._sent_text(), self.own)

    def grams(self) -> dict[int, frozenset[int]]:
        """The documents' grams the client was sent (all channels) and the capped grams it was
        refused (it asked for them), for coverage."""
        found = {} if self._quiet() else self.owner.grams(self._sent_text(), self.own)
        for doc, ordinals in self._asked.items():
            found[doc] = found.get(doc, frozenset()) | ordinals
        return found

    def _carries_closed(self, released: dict[Channel, str]) -> bool:
        """Whether what is about to be released, read on from what each channel already sent,
        carries grams of a document closed to it (capped, or at its customer's limit: the
        stream then ends)."""
        if not self.owner.closing(self.exhausted):
            self._carry.clear()
            return False
        hits: dict[int, frozenset[int]] = {}
        for channel, text in released.items():
            if channel not in self._carry:  # capping began mid-stream: read on from the sent tail
                self._carry[channel] = CappedStream()
                sent = "".join(self._sent.get(channel, ()))
                self.owner.closed_feed(self._carry[channel], sent[-_CAPPED_TAIL:], self.own, self.exhausted)
            found = self.owner.closed_feed(self._carry[channel], text, self.own, self.exhausted)
            for doc, ordinals in found.items():
                hits[doc] = hits.get(doc, frozenset()) | ordinals
        if not hits:
            return False
        self._capped, asked = self.owner.closed_decision(hits)
        self._asked = dict(asked)
        for channel in released:
            self.owner.attempted(self.reply_id, self._received.get(channel, ""), self.own)
        return True

    def _joins(self, released: dict[Channel, str]) -> bool:
        """Whether a channel about to release text has received (held back included) text that
        joins other replies' pieces of a document into a leak (`GatewayGuard.joined`; the stream
        then ends before any of it goes). Each check reads what arrived since the last one, with
        the letters before it that a gram ending in it may start in. A channel's ends (a piece
        beside another reply's run) are checked at its first release, while its first letters
        are still held back, and at the last, while its last letters are: the ends that count
        are the reply's first and last letters, as for a whole reply."""
        if self.owner.limits is None:
            return False
        for channel, text in released.items():
            received = self._received.get(channel, "")
            first = channel not in self._looked
            looked = self._looked.get(channel, 0)
            if not text or looked == len(received):
                continue
            self._looked[channel] = len(received)
            quiet = self._scanners[channel].quiet and len(self._received) == 1  # no counted gram in it
            start = max(0, looked - _GRAM_CONTEXT)
            ends = first or self._done
            self._joined, grams = self.owner.joined(
                self.reply_id, received[start:], self.own, quiet, received, ends, self.exhausted
            )
            if self._joined is not None:  # what it asked for counts as taken, like a capped refusal
                for doc, ordinals in grams.items():
                    self._asked[doc] = self._asked.get(doc, frozenset()) | ordinals
                return True
            for doc in grams.keys() & self.exhausted.keys():  # read again in the next check's context
                self.exhausted[doc] |= grams[doc]
        return False

    def _quiet(self) -> bool:
        """Whether the reply is one text that held no counted gram (`ViewScanner.quiet`): what
        was sent of it holds none either."""
        one = len(self._received) == 1 and len(self._sent) <= 1
        return one and all(scanner.quiet for scanner in self._scanners.values())

    def _sent_text(self) -> str:
        return "\n".join("".join(parts) for parts in self._sent.values())

    def fragments(self) -> list[Fragment]:
        """Fragments of the copied runs the client was sent, to keep for the window."""
        named = [p for result in self._name_results if not result.leaked for p in result.pieces]
        return [p for scanner in self._scanners.values() for p in scanner.sent_pieces] + named

    def decision(self) -> Decision | None:
        if self._malformed:
            return Decision("output", "malformed", "blocked", reasons=("tool name too long",))
        if self._capped is not None:
            return self._capped
        if self._joined is not None:
            return self._joined
        results = [
            ScanResult(scanner.spans, "", tuple(scanner.joins))
            for scanner in self._scanners.values()
            if scanner.spans
        ] + [result for result in self._name_results if result.leaked]
        if not results:
            return None
        action: Action = "blocked" if self._blocked else "redacted"
        index = self.owner.scanner.current()
        params = index.params if index is not None else IndexParams.for_leak_length(seed=0)
        return _output_decision(results, action, params)

    def _scanner(self, channel: Channel) -> ViewScanner:
        scanner = self._scanners.get(channel)
        if scanner is None:
            scanner = self.owner.scanner.watch(self.owner.policy, self.strict, self.pieces, self.own)
            self._scanners[channel] = scanner
        return scanner

    def _name(self, channel: Channel, text: str) -> str | None:
        """A piece of a call's name, scanned whole with what came of the name before: what to
        send of it, or None when the stream must stop."""
        name = self._names.get(channel, "") + text
        self._names[channel] = name
        if len(name) > TOOL_NAME_MAX:
            self._malformed = True
            return None
        if self.owner.scanner.current() is None:
            return text
        result = self.owner.scanner.inspect(name, self.strict, self.pieces, self.own)
        self._name_results = [r for r in self._name_results if r.leaked] + [result]
        if not result.leaked:
            return text
        if self.owner.policy == "block":
            return None
        return result.redacted if len(name) == len(text) else ""

    def _event(
        self, clean: dict[str, Any], released: dict[Channel, str], keep_finish: bool
    ) -> dict[str, Any] | None:
        """`clean` with its texts replaced by what is released now; None when it says nothing."""
        choice = clean["choices"][0]
        out: dict[str, Any] = {"index": 0}
        says = keep_finish and choice.get("finish_reason") is not None
        if self.endpoint == "chat":
            delta = choice.get("delta") or {}
            out["delta"] = {"role": "assistant"} if "role" in delta else {}
            says = says or "role" in delta
            for call in delta.get("tool_calls") or ():
                if "id" in call:  # a new call: its id and type go out at once
                    out["delta"].setdefault("tool_calls", []).append(
                        {"index": call["index"], "id": call["id"], "type": "function"}
                    )
                    says = True
        else:
            out["text"] = ""
        for channel, text in released.items():
            if text:
                set_channel(out, self.endpoint, channel, text)
                self._sent.setdefault(channel, []).append(text)
                says = True
        out["logprobs"] = None
        out["finish_reason"] = choice.get("finish_reason") if keep_finish else None
        if not says:
            return None
        return {**{k: v for k, v in clean.items() if k != "choices"}, "choices": [out]}

    def _stop(self, clean: dict[str, Any], released: dict[Channel, str]) -> list[dict[str, Any]]:
        """End the stream: what was safe in this event, then the content filter's finish."""
        self._done = True
        self._blocked = True
        out = self._event(clean, released, keep_finish=False)
        return [*([out] if out is not None else []), self._closing(clean)]

    def _closing(self, event: dict[str, Any]) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": CONTENT_FILTER}
        if self.endpoint == "chat":
            choice.update(delta={}, logprobs=None)
        else:
            choice.update(text="", logprobs=None)
        return {k: v for k, v in event.items() if k not in ("choices", "usage")} | {"choices": [choice]}


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
