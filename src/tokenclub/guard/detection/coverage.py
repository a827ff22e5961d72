"""Coverage: how much of each contributed document a customer has been sent, in pieces of any size.

Chains and joins (`guard/detection/fragments.py`, `guard/detection/accumulate.py`) need two hits in a row; a
patient customer who takes a document in pieces shorter than that gets it all. Coverage
counts instead every distinct indexed gram of a document that a delivered reply carried,
single hits included: the reply's grams at every position are looked up in the index and,
when they count (not common, not public, overlapping no common or public gram of the reply:
`GuardIndex.counted`), in the gram→document table (`guard/indexing/doctable.py`),
which gives the document and the gram's place in it. The letters a customer holds of a
document are the union of its grams' spans (`width` letters every `stride`), so the same
piece sent twice counts once and neighbouring pieces do not double.

A gram that a second document holds too (a quoted passage, a stock phrase of the genre) is no
one's taking, and letters of one reply that a document holds in several places count at one
place (`reply_runs`). What counts against a limit is that union less its longest run, up to
`floor` letters: one stock phrase an honest reply shares with a document (a run of
neighbouring grams) is free, while a collector's pieces, taken from several places of the
document, count from the second one on, however short the document. Two limits (fractions of
the document's guard letters): a customer past `customer` of a document has it exhausted
(it is closed to that customer; from the `strikes`-th block for it the customer is refused);
a document whose union over all customers passes `document`, and is more than any one
customer's own, is capped (`capping_letters`): closed to everyone. A closed document's grams
are refused (`CappedGrams`): every reply that carries a whole gram of it, or 25 of a gram's
26 letters (a piece cut between aligned starts), is blocked, unless its reader was sent that
gram already (common and public grams, and those of two documents, excepted, as everywhere).
One customer's taking alone caps nothing: its own limit, read the same way, stops it as
early, and a second honest customer sent the same replies is not locked out by the first.

This module is the arithmetic only; `guard/state/coverage_store.py` keeps the grams in the database.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from tokenclub.guard.detection.neighbours import (
    Edge,
    Ends,
    Seams,
    edges_of,
    joined_seams,
    seams_of,
    straddled,
)
from tokenclub.guard.hashing import MASK64, U64, gram_hash, splitmix_int
from tokenclub.guard.indexing.doctable import ENTRY, first_document
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, letter_keys
from tokenclub.guard.normalize import char_letters, normalize

Grams = Mapping[int, frozenset[int]]  # document → ordinals of its grams
_K = TypeVar("_K")
_V = TypeVar("_V", bound=tuple[Any, ...])  # (time kept, …)


@dataclass(frozen=True, slots=True)
class Limits:
    """Coverage limits as fractions of a document's guard letters, kept for `window_s`;
    `floor`: letters of one run (the longest) that never count; `strikes`: replies blocked for
    more of one exhausted or capped document after which the customer is refused."""

    customer: float
    document: float
    window_s: int
    reserve: int = 49
    hold_s: int = 600
    floor: int = 50
    join_s: int = 600
    strikes: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.customer <= self.document <= 1:
            raise ValueError(
                f"coverage limits need 0 < customer ({self.customer}) <= document ({self.document}) <= 1"
            )
        if self.window_s < 1 or self.reserve < 0 or self.hold_s < 1 or self.floor < 0 or self.join_s < 1:
            raise ValueError(
                "coverage window_s, hold_s and join_s must be positive, reserve and floor not negative"
            )
        if self.strikes < 1:
            raise ValueError(f"coverage strikes ({self.strikes}) must be at least 1")

    def customer_letters(self, letters: int) -> int:
        """Counted letters of a document of `letters` past which one customer has it exhausted."""
        return max(1, math.floor(self.customer * letters))

    def document_letters(self, letters: int) -> int:
        """Counted letters of a document, all customers together, past which it is capped."""
        return max(1, math.floor(self.document * letters))


def reply_grams(index: GuardIndex, text: str, own: int | None = None) -> dict[int, frozenset[int]]:
    """The grams of each document that `text` carries (at any position) and that count toward
    coverage (`reply_runs`), except the reader's own partner's (`own`)."""
    return reply_runs(index, text, own)[2]


def reply_runs(
    index: GuardIndex, text: str, own: int | None = None
) -> tuple[dict[int, frozenset[int]], list[Edge], dict[int, frozenset[int]]]:
    """The indexed grams of each document that `text` carries, for the joins; the `Edge` of each
    document's run in the text (its letters around the first and the last gram), for the
    neighbours of the run sent in other replies; and of those grams, the ones that count toward
    coverage (`GuardIndex.counted_alone`: no second document holds them; `_once`: letters of the reply
    that a document holds in several places are one of them)."""
    if not text or not index.docs.present:
        return {}, [], {}
    letters = normalize(text).letters
    keys, _, positions = letter_keys(index.params, [letters], step=1)
    if not len(keys):
        return {}, [], {}
    counted, alone = index.counted_alone(keys)  # counted: not common, not public, nor beside one
    alone = alone[counted]
    unique, inverse = np.unique(keys[counted], return_inverse=True)
    single = np.zeros(len(unique), dtype=np.bool_)
    np.logical_or.at(single, inverse, alone)
    held = positions[counted]
    earliest = np.full(len(unique), len(letters), dtype=np.int64)
    latest = np.zeros(len(unique), dtype=np.int64)
    np.minimum.at(earliest, inverse, held)
    np.maximum.at(latest, inverse, held)
    found: dict[int, set[int]] = {}
    taken: dict[int, list[tuple[int, int]]] = {}  # document → (where in the reply, ordinal)
    runs: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}
    for at, hit in index.docs.lookup_at(unique):
        if own is not None and index.docs.partner(hit.doc) == own:
            continue
        found.setdefault(hit.doc, set()).add(hit.ordinal)
        if single[at]:
            taken.setdefault(hit.doc, []).append((int(earliest[at]), hit.ordinal))
        first = (int(earliest[at]), hit.ordinal)
        last = (int(latest[at]), hit.ordinal)
        if hit.doc in runs:
            before, after = runs[hit.doc]
            first = first if hit.ordinal < before[1] else before
            last = last if hit.ordinal > after[1] else after
        runs[hit.doc] = (first, last)
    grams = {doc: frozenset(ordinals) for doc, ordinals in found.items()}
    edges = edges_of(letters.tolist(), runs, index.params) if runs else []
    return grams, edges, {doc: _once(hits, index.params) for doc, hits in taken.items()}


def _once(hits: list[tuple[int, int]], params: IndexParams) -> frozenset[int]:
    """A document's grams in a reply, (where in the reply, ordinal), less those whose letters of
    the reply another gram of it already stands for: the same phrase held in several places of a
    document ("자유한국당 국회의원" three times) is sent once. Two grams whose places in the reply
    overlap stand for the same letters unless they sit as far apart in the document as in the
    reply (one run of it)."""
    kept: list[tuple[int, int]] = []  # (where, where in the document − where in the reply)
    ordinals: set[int] = set()
    for where, ordinal in sorted(hits):
        shift = ordinal * params.stride - where
        near = [k for k in kept if where - k[0] < params.width]
        if all(k[1] == shift for k in near):
            kept = [*near, (where, shift)]
            ordinals.add(ordinal)
    return frozenset(ordinals)


def _spans(ordinals: Iterable[int], params: IndexParams, letters: int) -> list[tuple[int, int]]:
    """The grams' spans of letters, neighbours that touch or overlap merged into one run."""
    runs: list[tuple[int, int]] = []
    for ordinal in sorted(set(ordinals)):
        start = ordinal * params.stride
        end = min(start + params.width, letters)
        if end <= start:
            continue
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def covered_letters(ordinals: Iterable[int], params: IndexParams, letters: int) -> int:
    """Letters of a document of `letters` guard letters that the grams `ordinals` span."""
    return sum(end - start for start, end in _spans(ordinals, params, letters))


def counted_letters(ordinals: Iterable[int], params: IndexParams, letters: int, floor: int) -> int:
    """The covered letters that count against a limit: all but the longest run's first `floor`."""
    runs = [end - start for start, end in _spans(ordinals, params, letters)]
    return sum(runs) - min(max(runs, default=0), floor)


def capping_letters(
    by_customer: Mapping[int, Collection[int]], params: IndexParams, letters: int, floor: int
) -> int:
    """The counted letters of a document that the document cap is measured by: those of every
    customer's grams together, once they are more than any one customer's own; else 0. What one
    customer takes alone is its own limit's business (past it, that customer is blocked); a cap
    blocks the document for everyone, so one honest customer whose replies happen to share a
    document's phrases, and others who are sent the same replies, cap nothing."""
    union = counted_letters(set().union(*by_customer.values()), params, letters, floor)
    alone = max((counted_letters(grams, params, letters, floor) for grams in by_customer.values()), default=0)
    return union if union > alone else 0


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a customer stands: the document it holds most of (as a share of its limit), the
    capped documents it holds counted letters of, and the documents it is at its limit of
    (`exhausted`: replies that carry more of them are blocked)."""

    doc: int | None
    letters: int
    limit: int
    capped: tuple[int, ...]
    exhausted: tuple[int, ...] = ()

    @property
    def limited(self) -> tuple[int, ...]:
        """The documents that replies to the customer may carry no more of: capped, or at its limit."""
        return tuple(sorted({*self.capped, *self.exhausted}))


def standing(
    mine: Grams,
    capped: Iterable[int],
    reserved: int,
    params: IndexParams,
    lengths: Mapping[int, int],
    limits: Limits,
    asked: Iterable[int] = (),
) -> Standing:
    """The customer's standing from its grams (`mine`), the capped documents, `reserved`
    letters of its requests in flight, which count against every document it already holds
    counted letters of (a document is exhausted when those plus the reservations reach its
    limit), and the capped documents it was refused grams of (`asked`): one refusal is enough,
    no run of a capped document is free."""
    worst: tuple[float, int | None, int, int] = (-1.0, None, 0, 0)
    closed = set(capped)
    tried = set(asked)
    held_capped: list[int] = []
    exhausted: list[int] = []
    for doc, ordinals in sorted(mine.items()):
        letters = lengths[doc]
        counted = counted_letters(ordinals, params, letters, limits.floor)
        held = counted + reserved if counted else 0
        limit = limits.customer_letters(letters)
        share = held / limit
        if share > worst[0]:
            worst = (share, doc, held, limit)
        if held >= limit:
            exhausted.append(doc)
        if (counted or doc in tried) and doc in closed:
            held_capped.append(doc)
    return Standing(worst[1], worst[2], worst[3], tuple(held_capped), tuple(exhausted))


def _joined_runs(ordinals: Iterable[int], params: IndexParams) -> list[tuple[int, int]]:
    """The grams' spans, merged where the letters between two of them may have been sent too: a
    piece's first aligned gram starts at most `stride − 1` letters into it and its last ends at
    most `stride − 1` before its end, so neighbouring pieces leave gaps of up to 2·(stride − 1)."""
    gap = 2 * (params.stride - 1)
    runs: list[tuple[int, int]] = []
    for ordinal in sorted(set(ordinals)):
        start = ordinal * params.stride
        end = start + params.width
        if runs and start <= runs[-1][1] + gap:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `Deliveries.claim` refused a reply: its run joins other replies' pieces of `doc`
    into a leak, or (`capped`: the grams) its ends complete grams of a capped `doc` beside
    another reply's run."""

    doc: int
    capped: frozenset[int] = frozenset()


class Deliveries:
    """The grams of each document sent to any customer in the last `window_s` seconds, or in
    flight: a reply's grams are added when it is scanned, before any of it is released.

    Pieces of a document below the leak length, taken by several customers in turn or by one
    customer all at once, each pass the reply scan, and coverage counts them only when they are
    tallied. A reply whose grams, with those of *other* replies (any customer) of the same
    document, would span a run that a client could read as `length` consecutive letters is
    refused here instead: the joined run reaches `length − 2·(stride − 1)` letters of grams
    (the letters at its two ends that no aligned gram covers are not seen) and is longer than
    any one reply's run, so a phrase sent twice alone never joins. Common and public grams were
    never attributed, so stock phrases do not join.

    A piece too short to hold a whole gram is seen beside another reply's run
    (`guard/detection/neighbours.py`): the runs' edges are kept, and every reply's ends (the
    newest `ends_kept`), so whichever of the two is scanned second finds the grams they
    straddle, credited to the piece. The runs of refused replies are kept apart and join
    nothing; past a document's cap, a piece beside one of them is refused too (`claim`'s
    `capped`). Kept in this worker's memory.
    """

    def __init__(
        self,
        generation: str,
        params: IndexParams,
        window_s: int,
        ends_kept: int = 256,
        edges_kept: int = 512,
        leak_letters: int = 0,
        join_share: float = 0.0,
    ) -> None:
        """`leak_letters`: NFKC letters a joined run must also hold to be a leak (0: its guard
        letters alone decide); `join_share`: with them, the share of a document's guard letters
        at which a run, joined or one reply's own, is stopped all the same (0: none), so that
        runs under a leak's NFKC letters cannot take a short document whole."""
        self.generation = generation
        self.params = params
        self.window_s = window_s
        self.length = params.guaranteed_length() - 2 * (params.stride - 1)
        self.leak_letters = leak_letters
        self.join_share = join_share
        self.ends_kept = ends_kept
        self.edges_kept = edges_kept
        # document → (when, reply, grams, whether they are the reply's own or straddle a seam)
        self._sent: dict[int, deque[tuple[float, str, frozenset[int], bool]]] = {}
        self._added: deque[tuple[float, int]] = deque()  # (when, document) of every entry, to forget them
        self._edges = _Edges()  # the runs of replies sent (or in flight)
        self._refused = _Edges()  # the runs of replies refused (`attempt`), read for capped documents only
        self._ends: dict[str, tuple[float, Ends]] = {}  # reply → its ends, oldest first
        self._lock = threading.Lock()

    def claim(
        self,
        reply: str,
        grams: Grams,
        now: float,
        ends: Ends | None = None,
        edges: Sequence[Edge] = (),
        own: int | None = None,
        index: GuardIndex | None = None,
        capped: Collection[int] = (),
    ) -> Refusal | None:
        """Why the reply is refused (nothing is kept then): its run `grams`, with what its
        `ends` and `edges` straddle beside other replies (looked up in `index`), would join
        other replies' into a leak; or its ends complete grams of a `capped` document beside
        another reply's run, sent or refused (a piece too short to carry a gram of its own,
        asked for beside one). Otherwise None, and everything is kept as `reply`'s. A stream
        claims again as it goes, under one `reply`: its edges widen, its ends move on."""
        with self._lock:
            self._trim(now)
            straddling: dict[int, set[int]] = {}
            beside: dict[int, dict[str, set[int]]] = {}
            seams = {edge.doc: seams_of(edge, self.params) for edge in edges}
            if index is not None:
                straddling = self._after_others(index, reply, ends, own)
                near = self._beside_capped(index, reply, ends, own, capped, straddling)
                if near is not None:
                    return near
                beside = self._beside_others(index, reply, edges, seams)
            for doc in sorted(grams.keys() | straddling.keys()):
                mine = grams.get(doc, frozenset())
                if self._joins(doc, reply, mine, straddling.get(doc, set()), beside.get(doc, {}), index):
                    return Refusal(doc)
            for doc, held in grams.items():
                self._keep(doc, (now, reply, frozenset(held), True))
            for doc, given in straddling.items():
                self._keep(doc, (now, reply, frozenset(given), False))
            for doc, others in beside.items():
                for other, given in others.items():
                    self._keep(doc, (now, other, frozenset(given), False))
            for edge in edges:
                kept = self._edges.kept.get((reply, edge.doc))
                if kept is not None:
                    edge = _wider(kept[1], edge)
                    seams[edge.doc] = seams_of(edge, self.params)
                self._edges.put(reply, edge, seams[edge.doc], now)
            if ends is not None:
                self._ends.pop(reply, None)
                self._ends[reply] = (now, ends)
            self._trim(now)
            return None

    def attempt(self, reply: str, edges: Sequence[Edge], now: float) -> None:
        """Keep the edges of a refused reply's runs (nothing of it went out), apart from those
        of replies sent: they join nothing, but once their document is capped, a piece asked for
        beside one, too short to carry a gram of its own, is seen (`claim`'s `capped`)."""
        if not edges:
            return
        with self._lock:
            for edge in edges:
                self._refused.put(reply, edge, seams_of(edge, self.params), now)
            self._trim(now)

    def _beside_capped(
        self,
        index: GuardIndex,
        reply: str,
        ends: Ends | None,
        own: int | None,
        capped: Collection[int],
        sent: dict[int, set[int]],
    ) -> Refusal | None:
        """A capped document whose grams the reply's ends complete beside a run: `sent` (those
        beside sent replies, already looked up) and those beside refused ones. A document walked
        in pieces past its cap, each too short to carry a gram, then goes on only where two such
        pieces follow each other."""
        if not capped:
            return None
        near = {doc: set(grams) for doc, grams in sent.items() if doc in capped}
        for doc, grams in self._after_others(index, reply, ends, own, self._refused).items():
            if doc in capped:
                near.setdefault(doc, set()).update(grams)
        if not near:
            return None
        doc = min(near)
        return Refusal(doc, frozenset(near[doc]))

    def _keep(self, doc: int, entry: tuple[float, str, frozenset[int], bool]) -> None:
        self._sent.setdefault(doc, deque()).append(entry)
        self._added.append((entry[0], doc))

    def _trim(self, now: float) -> None:
        """Forget what left the window, or the oldest edges and ends past their limits: a
        document's grams are dropped as their time passes, whether or not it is claimed again."""
        since = now - self.window_s
        while self._added and self._added[0][0] < since:
            _, doc = self._added.popleft()
            sent = self._sent.get(doc)
            while sent and sent[0][0] < since:
                sent.popleft()
            if sent is not None and not sent:
                del self._sent[doc]
        self._edges.trim(self.edges_kept, since)
        self._refused.trim(self.edges_kept, since)
        _drop_oldest(self._ends, self.ends_kept, since)

    def _after_others(
        self, index: GuardIndex, reply: str, ends: Ends | None, own: int | None, edges: _Edges | None = None
    ) -> dict[int, set[int]]:
        """The grams this reply's ends complete beside other replies' runs (sent ones, unless
        `edges` names others)."""
        edges = self._edges if edges is None else edges
        if ends is None or not edges.kept:
            return {}
        seams, owners = edges.stacked()
        mask = owners != reply
        if own is not None:
            theirs = [doc for doc in np.unique(seams.doc).tolist() if index.docs.partner(doc) == own]
            mask &= ~np.isin(seams.doc, theirs)
        return straddled(index, seams.where(mask), [ends])[0]

    def _beside_others(
        self, index: GuardIndex, reply: str, edges: Sequence[Edge], seams: dict[int, Seams]
    ) -> dict[int, dict[str, set[int]]]:
        """The grams this reply's runs complete with other replies' ends, per document and other
        reply (they went out: the letters they gave beside this run are theirs)."""
        beside: dict[int, dict[str, set[int]]] = {}
        if not edges:
            return beside
        others = [(other, theirs) for other, (_, theirs) in self._ends.items() if other != reply]
        if not others:
            return beside
        found = straddled(index, joined_seams([seams[edge.doc] for edge in edges]), [e for _, e in others])
        for (other, _), got in zip(others, found, strict=True):
            for doc, ordinals in got.items():
                beside.setdefault(doc, {}).setdefault(other, set()).update(ordinals)
        return beside

    def _joins(
        self,
        doc: int,
        reply: str,
        own: frozenset[int],
        straddling: set[int],
        beside: dict[str, set[int]],
        index: GuardIndex | None = None,
    ) -> bool:
        """Whether the reply's grams of `doc` (its own, and those its ends straddle beside other
        replies' runs) join other replies' into a run of `length`, longer than any one reply's
        own run in it. Straddled grams join but make no reply's own run: a phrase that recurs in
        the document can straddle a seam far from where the piece was cut."""
        sent = self._sent.get(doc, deque())  # what left the window is gone (`_trim`)
        owned: dict[str, set[int]] = {reply: set(own)}
        joined: dict[str, set[int]] = {reply: set(own) | straddling}
        for _, other, grams, is_own in sent:
            joined.setdefault(other, set()).update(grams)
            if is_own:
                owned.setdefault(other, set()).update(grams)
        for other, given in beside.items():
            joined.setdefault(other, set()).update(given)
        if self._shared_out(doc, _joined_runs(owned[reply], self.params), index):
            return True
        if len(joined) < 2:
            return False
        mine = _joined_runs(joined[reply], self.params)
        alone = [_joined_runs(grams, self.params) for grams in owned.values()]
        for start, end in _joined_runs(set().union(*joined.values()), self.params):
            if not self._long_enough(doc, start, end, index) or not any(
                s < end and start < e for s, e in mine
            ):
                continue
            longest = max(
                (min(e, end) - max(s, start) for one in alone for s, e in one if s < end and start < e),
                default=0,
            )
            if end - start > longest:
                return True
        return False

    def _long_enough(self, doc: int, start: int, end: int, index: GuardIndex | None) -> bool:
        """Whether a joined run of the document's guard letters [start, end) may hold a leak:
        `length` of them, and under a verdict in NFKC letters `leak_letters` of those in the run
        widened by what a piece may hold beyond its grams (`stride − 1` letters at each end),
        when the document table kept them (`DocTable.nfkc_letters`)."""
        if end - start < self.length:
            return False
        if not self.leak_letters or index is None or self._shared_out(doc, [(start, end)], index):
            return True
        reach = self.params.stride - 1
        counted = index.docs.nfkc_letters(doc, start - reach, end + reach)
        return counted is None or counted >= self.leak_letters

    def _shared_out(self, doc: int, runs: Sequence[tuple[int, int]], index: GuardIndex | None) -> bool:
        """Whether one of `runs` holds `join_share` of the document (and a join's `length`)."""
        if not self.join_share or not self.leak_letters or index is None:
            return False
        least = max(self.length, math.ceil(self.join_share * index.docs.letters(doc)))
        return any(end - start >= least for start, end in runs)


class _Edges:
    """Kept run edges by (reply, document), oldest first, with every edge's seams stacked once
    for the look-ups that follow (rebuilt only when the set changes)."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, int], tuple[float, Edge, Seams]] = {}
        self._stacked: tuple[Seams, np.ndarray] | None = None  # the seams, and each row's reply

    def put(self, reply: str, edge: Edge, seams: Seams, now: float) -> None:
        self.kept.pop((reply, edge.doc), None)
        self.kept[(reply, edge.doc)] = (now, edge, seams)
        self._stacked = None

    def trim(self, limit: int, since: float) -> None:
        before = len(self.kept)
        _drop_oldest(self.kept, limit, since)
        if len(self.kept) != before:
            self._stacked = None

    def stacked(self) -> tuple[Seams, np.ndarray]:
        if self._stacked is None:
            kept = list(self.kept.items())
            seams = joined_seams([entry[2] for _, entry in kept])
            owners = np.repeat(
                np.array([owner for (owner, _), _ in kept], dtype=object), [len(e[2]) for _, e in kept]
            )
            self._stacked = (seams, owners)
        return self._stacked


def _drop_oldest(kept: dict[_K, _V], limit: int, since: float) -> None:
    """Drop the oldest entries (they come first) older than `since` or beyond `limit`."""
    while kept and (len(kept) > limit or next(iter(kept.values()))[0] < since):
        del kept[next(iter(kept))]


def _wider(kept: Edge, new: Edge) -> Edge:
    """One edge of a stream's run from two of its checks: the earlier first gram, the later last."""
    low = kept if kept.first <= new.first else new
    high = kept if kept.last >= new.last else new
    return Edge(kept.doc, low.first, high.last, low.before, low.lead, high.after)


_MIX1_INVERSE = np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
_MIX2_INVERSE = np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
_CODE_POINTS = np.uint64(0x110000)


def _unshift(y: U64, shift: int) -> U64:
    """The inverse of x ^ (x >> shift)."""
    x = y.copy()
    for _ in range(64 // shift + 1):
        x = y ^ (x >> np.uint64(shift))
    return x


def unsplitmix(mixed: U64) -> U64:
    """The inverse of `hashing.splitmix` (a bijection of 64-bit words)."""
    z = _unshift(mixed, 31) * _MIX2_INVERSE
    z = _unshift(z, 27) * _MIX1_INVERSE
    return _unshift(z, 30)


def document_entries(index: GuardIndex, docs: Iterable[int]) -> np.ndarray:
    """The gram→document table's entries (key, doc, ordinal) of the documents `docs`, one pass
    over each run that holds any: a run holds the documents from its first one to the next
    run's first (runs cover consecutive ranges of documents, merged or not:
    `guard/indexing/doctable.py`)."""
    wanted = np.unique(np.fromiter(docs, dtype=np.int64))
    runs = sorted((index.folder / "docs").glob("run-*.npy"), key=first_document)
    firsts = [first_document(path) for path in runs]
    parts = []
    for at, path in enumerate(runs):
        end = firsts[at + 1] if at + 1 < len(runs) else np.iinfo(np.int64).max
        held = wanted[(wanted >= firsts[at]) & (wanted < end)]
        if len(held):
            run = np.load(path, mmap_mode="r")
            parts.append(np.asarray(run[np.isin(run["doc"], held)]))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ENTRY)


@dataclass(slots=True)
class CappedStream:
    """What `CappedGrams.feed` carries from one streamed piece to the next: the last `width`
    letters, and the polynomial of the last `width − 1` (None until there are that many)."""

    letters: list[int] = field(default_factory=list)
    raw: int | None = None


class CappedGrams:
    """The counting grams of the capped documents, to refuse them to every reply.

    A whole gram is a key of the set. A piece cut between two stride-aligned starts holds no
    whole gram but, from 28 letters on, 25 letters of one (all but its first or its last).
    The keys are SplitMix64-finalised polynomial hashes (`guard/hashing.py`); the finaliser is a
    bijection, so each key gives back its polynomial ``G = Σ c_j·B^(w−1−j)``. For a reply's
    window v of w − 1 letters with polynomial P(v): a gram missing its first letter c₀ has
    ``G − P(v) = c₀·B^(w−1)``, so ``G·B^−(w−1) − P(v)·B^−(w−1)`` is a code point; a gram missing
    its last letter has ``G − B·P(v) = c_(w−1)``. Each is a range query (below 2²¹) in a
    sorted array: two binary searches per window. A chance match needs a 64-bit value to fall
    in a range of 2²¹, about n·10⁻¹³ per window for n capped grams.
    """

    def __init__(self, index: GuardIndex, docs: Iterable[int]) -> None:
        self.params = index.params
        entries = document_entries(index, docs)
        entries = entries[index.single(np.ascontiguousarray(entries["key"]))] if len(entries) else entries
        self.docs = frozenset(int(d) for d in entries["doc"].tolist())
        self._keys = np.sort(np.asarray(entries["key"], dtype=np.uint64))
        self._key_entry = np.argsort(np.asarray(entries["key"], dtype=np.uint64), kind="stable")
        whole = gram_hash(self.params.width, self.params.seed)
        raw = unsplitmix(np.asarray(entries["key"], dtype=np.uint64)) ^ np.uint64(whole.key)
        self._last = np.argsort(raw, kind="stable")  # gram missing its last letter: raw itself
        self._last_values = raw[self._last]
        self._lift = np.uint64(pow(whole.inverse, self.params.width - 1, 1 << 64))
        first = raw * self._lift
        self._first = np.argsort(first, kind="stable")
        self._first_values = first[self._first]
        self._base = np.uint64(whole.base)
        self._doc = np.asarray(entries["doc"], dtype=np.int64)
        self._ordinal = np.asarray(entries["ordinal"], dtype=np.int64)
        # the same, as Python integers, for a stream's few new letters at a time (`feed`)
        self._whole_key = whole.key
        self._top = whole.top
        self._key_list: list[int] = self._keys.tolist()
        self._first_list: list[int] = self._first_values.tolist()
        self._last_list: list[int] = self._last_values.tolist()

    def __bool__(self) -> bool:
        return bool(len(self._keys))

    def hits(self, text: str) -> dict[int, frozenset[int]]:
        """The capped documents' grams `text` carries whole or all but one end letter."""
        if not self or not text:
            return {}
        letters = normalize(text).letters
        width = self.params.width
        found: list[int] = []
        if len(letters) >= width:
            keys = gram_hash(width, self.params.seed).at(letters, np.arange(len(letters) - width + 1))
            at = np.searchsorted(self._keys, keys)
            inside = at < len(self._keys)
            match = np.zeros(len(keys), dtype=np.bool_)
            match[inside] = self._keys[at[inside]] == keys[inside]
            found += self._key_entry[at[match]].tolist()
        if len(letters) >= width - 1:
            short = gram_hash(width - 1, self.params.seed)
            raw = short.raw_at(letters, np.arange(len(letters) - width + 2))
            found += self._in_range(self._first_values, self._first, raw * self._lift)
            found += self._in_range(self._last_values, self._last, raw * self._base)
        grams: dict[int, set[int]] = {}
        for entry in found:
            grams.setdefault(int(self._doc[entry]), set()).add(int(self._ordinal[entry]))
        return {doc: frozenset(ordinals) for doc, ordinals in grams.items()}

    def feed(self, stream: CappedStream, text: str) -> dict[int, frozenset[int]]:
        """`hits` for a stream: the grams that end in `text`'s letters, read on from what
        `stream` saw before. Integer arithmetic, rolling the polynomial one letter at a time: a
        streamed piece is a few letters, below NumPy's fixed cost."""
        if not self or not text:
            return {}
        width, base, top = self.params.width, int(self._base), self._top
        lift = int(self._lift)
        letters = stream.letters
        found: list[int] = []
        for char in text:
            for letter in char_letters(char):
                letters.append(letter)
                if len(letters) > width:
                    del letters[0]
                if stream.raw is not None and len(letters) == width:
                    stream.raw = (stream.raw * base + letter - letters[0] * top) & MASK64
                elif len(letters) >= width - 1:
                    stream.raw = 0
                    for earlier in letters[-(width - 1) :]:
                        stream.raw = (stream.raw * base + earlier) & MASK64
                else:
                    continue
                raw = stream.raw
                found += self._range_list(self._first_list, self._first, raw * lift & MASK64)
                found += self._range_list(self._last_list, self._last, raw * base & MASK64)
                if len(letters) == width:
                    whole = (letters[0] * top + raw) & MASK64
                    key = splitmix_int(whole ^ self._whole_key)
                    at = bisect_left(self._key_list, key)
                    while at < len(self._key_list) and self._key_list[at] == key:
                        found.append(int(self._key_entry[at]))
                        at += 1
        grams: dict[int, set[int]] = {}
        for entry in found:
            grams.setdefault(int(self._doc[entry]), set()).add(int(self._ordinal[entry]))
        return {doc: frozenset(ordinals) for doc, ordinals in grams.items()}

    @staticmethod
    def _range_list(values: list[int], order: np.ndarray, low: int) -> list[int]:
        """`_in_range` for one `low` (ranges that wrap past 2⁶⁴ are left out: chance 2⁻⁴³)."""
        left = bisect_left(values, low + 1)
        if left == len(values) or values[left] >= low + int(_CODE_POINTS):
            return []
        right = bisect_left(values, low + int(_CODE_POINTS), left)
        return [int(i) for i in order[left:right].tolist()]

    @staticmethod
    def _in_range(values: U64, order: np.ndarray, low: U64) -> list[int]:
        """Entries whose value lies in [low + 1, low + 2²¹) (modulo 2⁶⁴) for some `low`: the
        difference is a code point."""
        start = low + np.uint64(1)
        end = low + _CODE_POINTS
        found: list[int] = []
        left = np.searchsorted(values, start)
        right = np.searchsorted(values, end)
        for i in np.flatnonzero((right > left) & (end > start)).tolist():
            found += order[left[i] : right[i]].tolist()
        for i in np.flatnonzero(end <= start).tolist():  # the range wraps past 2⁶⁴
            found += order[left[i] :].tolist() + order[: right[i]].tolist()
        return found
