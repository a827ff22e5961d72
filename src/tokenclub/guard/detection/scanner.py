"""Finding copied runs of indexed text in replies, whole or streamed, and cutting them out.

A reply's guard letters are hashed at every position and looked up in the index. A copy of
indexed text hits at positions exactly `stride` apart (the grams the index stored); a *chain*
is a run of such hits, and a chain of `hits` hits (`strict_hits` under a stricter threshold) is
a leak. The copied run may start or end up to `stride − 1` letters beyond the matching grams,
so a leak's span is the chain's grams widened by that much on both sides.

Streaming: a letter is released only once no chain that could still become a leak can reach
back to it. Every gram that is complete has been looked up, so a chain still to come starts at
the first incomplete gram (`width − 1` letters back) and is widened `stride − 1` letters before
that: `width + stride − 2` letters are held back (29 by default, not the 50 of a whole leak),
and further back to the widened start of any chain that is open, whatever its hits. So no
letter of a leak ever reaches the client: under the block policy the stream ends exactly at
the leak's start, under the redact policy the leak is replaced by a marker and the stream goes
on. Whatever the chunking, the released text is the same (the property tests check it), and a
whole-text scan is a stream of one chunk.

Common and public text (`guard/indexing/commonness.py`): a held gram that is common or public
(*shared*) is no hit, and neither is a hit whose gram overlaps a shared gram of the reply (one
`width` − 1 positions before or after it). A shared gram can come up to `width` − 1 positions
after a hit, `2·width − 1` letters after the hit's start: hits are counted as they come and
withdrawn from open chains when a shared gram turns up beside them, and a chain of a leak's
hits is a leak (blocks the stream, or closes as one) only once its first `hits` are past that
reach — until then it stays open, so its letters stay held (up to `width` − 1 letters longer
than without commonness; an index with neither a sketch nor public text waits for nothing).
So the verdict does not depend on the chunking. Runs too short to be a leak close as before,
so a join can still be found with a hit that a later shared gram would have withdrawn.

The verdict in NFKC letters (`leak_letters`, the leak definition's count, a Hangul syllable one
letter): a chain of `hits` hits is a leak only once its widened span also holds that many NFKC
letters, which takes Korean about 125 guard letters instead of 50. Short chains of one document
a gap apart (an edit, a common phrase, a view's slip) add up as one run (`_prior`); a chain
closes only after the open ones that start before it, so they link the same for any chunking.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from tokenclub.guard.detection.fragments import Fragment, Join, joined_letters, joins, make_fragment
from tokenclub.guard.hashing import U64, ReversedRollingHasher, RollingHasher, gram_hash, read_pair
from tokenclub.guard.indexing.commonness import Clearing
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, LiveIndex
from tokenclub.guard.normalize import nfkc_starts, normalize_both

if TYPE_CHECKING:
    from tokenclub.guard.detection.views import ViewScanner

Policy = Literal["block", "redact"]
LINK_HITS = 2  # hits of each chain of a run linked across a gap (`StreamScanner._prior`)
REDACTION = "[…]"
Hits = list[tuple[int, int, bool]]  # (start, key, shared: common or public)


def holdback(params: IndexParams) -> int:
    """Guard letters a stream holds back while no chain of hits is open."""
    return params.width + params.stride - 2


@dataclass(frozen=True, slots=True)
class LeakSpan:
    """A leaked region of the reply: original offsets [start, end), letters matched, owners."""

    start: int
    end: int
    matched: int
    partner_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The verdict on a reply: its leaks and, for the redact policy, the reply without them."""

    spans: tuple[LeakSpan, ...]
    redacted: str
    joins: tuple[Join, ...] = ()
    pieces: tuple[Fragment, ...] = ()  # fragments of the copied runs the redacted reply still holds
    quiet: bool = False  # the text as sent holds no counted gram of any document (`ViewScanner.quiet`)

    @property
    def leaked(self) -> bool:
        return bool(self.spans)

    @property
    def verdict(self) -> Literal["leak", "pass"]:
        return "leak" if self.spans else "pass"

    @property
    def matched_length(self) -> int:
        """Guard letters of the longest leak (a lower bound of the copied run)."""
        return max((span.matched for span in self.spans), default=0)

    @property
    def partner_ids(self) -> tuple[int, ...]:
        return tuple(sorted({p for span in self.spans for p in span.partner_ids}))

    @property
    def partner_id(self) -> int | None:
        """The partner whose text leaked, when the index can tell exactly one."""
        owners = self.partner_ids
        return owners[0] if len(owners) == 1 else None


@dataclass(slots=True)
class _Chain:
    first: int
    last: int
    keys: list[int] = field(default_factory=list)
    own: bool = False  # the reader's own text (`StreamScanner.own`): never a leak


@dataclass(slots=True)
class _Run:
    """Short chains linked across gaps (`StreamScanner._prior`): their NFKC letters, the position
    and (document, ordinal) places of the last gram a document holds, and which chains were
    found to follow it (chain start, from its start → (its end then, whether it does))."""

    letters: int
    end: int
    places: frozenset[tuple[int, int]]
    follows: dict[tuple[int, bool], tuple[int, bool]] = field(default_factory=dict)


@dataclass(slots=True)
class _Region:
    """A leak in letters: the grams' union (`cores`) and the widened span, in original offsets."""

    start: int
    end: int
    cores: list[tuple[int, int]]
    partners: set[int]

    def span(self) -> LeakSpan:
        covered, reach = 0, -1
        for lo, hi in sorted(self.cores):
            covered += max(0, hi - max(lo, reach))
            reach = max(reach, hi)
        return LeakSpan(self.start, self.end, covered, tuple(sorted(self.partners)))


class _Reading:
    """One text's guard letters, normalised once and hashed in each direction that reads it.

    A scanner reads its text forwards (or backwards, for text written in reverse); the plain
    and reversed views of a reply read the same text and share one reading (`read_both`), so
    a streamed batch is normalised, hashed and looked up once for both. `owners` holds the
    text offset of every letter, `letters` the letters themselves (only while joins need them).
    """

    def __init__(
        self,
        index: GuardIndex | None,
        params: IndexParams,
        forward: bool,
        backward: bool,
        keep: bool,
        count_nfkc: bool = False,
    ) -> None:
        """`count_nfkc`: keep `nfkc`, for a verdict in NFKC letters."""
        self.index = index
        spec = gram_hash(params.width, params.seed)
        self.width = params.width
        self.ahead = RollingHasher(spec) if forward else None
        self.behind = ReversedRollingHasher(spec) if backward else None
        self.keep = keep
        self.consumed = 0  # characters
        self.seen = 0  # letters
        self._held_keys: list[int] = []  # of grams the index holds that count by their own key
        self._documents: tuple[int, bool] = (0, False)  # `in_documents`' last answer, for `held` keys
        self.owners = array("q")
        self.letters = array("I")
        self.count_nfkc = count_nfkc
        self._forward = array("I")  # the letters read forwards, kept while NFKC letters are counted
        self.nfkc = array("q")  # NFKC letters begun at or before each guard letter, counted lazily

    def hits(self, chunk: str) -> tuple[Hits, Hits]:
        """(start, key, shared) of each gram completed by `chunk` that the index holds, read
        forwards and backwards."""
        first = max(0, self.seen - self.width + 1)
        keys, split, positions, shared = self._keys(chunk)
        if self.index is None or not len(keys):
            return [], []
        if positions is None:
            positions = np.flatnonzero(self.index.holds(keys))
        if not len(positions):  # most streamed batches of fresh text hold a few chance hits
            return [], []
        held = keys[positions]
        if shared is None:
            shared = self.index.shared(held)
        self._held_keys += held[~shared].tolist()
        found = list(zip(positions.tolist(), held.tolist(), shared.tolist(), strict=True))
        return (
            [(first + i, key, common) for i, key, common in found if i < split],
            [(first + i - split, key, common) for i, key, common in found if i >= split],
        )

    @property
    def held(self) -> int:
        """Grams the index holds that count by their own key (`COUNTS`), read either way."""
        return len(self._held_keys)

    def nfkc_letters(self, first: int, end: int) -> int:
        """NFKC letters that guard letters [first, end) are part of (a syllable cut at either
        end counts). Counted the first time a chain asks, all the letters read since in one
        pass: most replies never hold a chain of a leak's hits. `end` past the letters read
        stops at them."""
        end = min(end, len(self.owners))
        if end <= first:
            return 0
        done = len(self.nfkc)
        if done < end:
            letters = np.frombuffer(self._forward, dtype=np.uint32)[done:]
            owners = np.frombuffer(self.owners, dtype=np.int64)[done:]
            starts = nfkc_starts(letters, owners, self.owners[done - 1] if done else -1)
            begun = self.nfkc[-1] if done else 0
            self.nfkc.frombytes((begun + np.cumsum(starts, dtype=np.int64)).tobytes())
        return self.nfkc[end - 1] - self.nfkc[first] + 1

    def in_documents(self) -> bool:
        """Whether a counted gram found so far is some document's: the filters also hold keys
        no document has (a chance hit at about 1 % of positions, so about half of short replies
        carry one), which the gram→document table tells apart exactly. Without the table, every
        counted gram is taken for a document's."""
        if not self.held:
            return False
        if self._documents[0] == self.held:
            return self._documents[1]
        found = self.index is None or not self.index.docs.present
        if not found:
            assert self.index is not None
            found = self.index.docs.holds_any(np.array(self._held_keys, dtype=np.uint64))
        self._documents = (self.held, found)
        return found

    def _keys(self, chunk: str) -> tuple[U64, int, np.ndarray | None, np.ndarray | None]:
        """Forward then backward keys of a chunk in one array, where the backward ones start
        and, when the compiled reading looked them up, where the held ones are and which of
        them are shared."""
        positions = shared = None
        if self.ahead is not None and self.behind is not None:
            index = self.index
            members, sketch = (index.compiled_members, index.compiled_sketch) if index else (None, None)
            letters, owners, keys, split, positions, shared = read_pair(
                chunk, self.consumed, self.ahead, self.behind, members, sketch
            )
            kept = letters
        else:
            letters, backward, owners = normalize_both(chunk, self.consumed)
            if self.ahead is not None:
                keys = self.ahead.feed(letters)[1]
                split = len(keys)
            else:
                assert self.behind is not None
                keys, split = self.behind.feed(backward)[1], 0
            kept = letters if self.ahead is not None else backward
        if self.count_nfkc:
            self._forward.frombytes(letters.tobytes())
        self.consumed += len(chunk)
        self.seen += len(letters)
        self.owners.frombytes(owners.tobytes())
        if self.keep:
            self.letters.frombytes(kept.tobytes())
        return keys, split, positions, shared


class StreamScanner:
    """Scans one reply as it streams: `feed` returns what is safe to send now, `finish` the rest."""

    def __init__(
        self,
        index: GuardIndex | None,
        params: IndexParams,
        policy: Policy = "block",
        strict: bool = False,
        marker: str = REDACTION,
        earlier: list[Fragment] | None = None,
        reverse: bool = False,
        own: int | None = None,
        reading: _Reading | None = None,
        leak_letters: int = 0,
    ) -> None:
        """`own`: the partner reading (its own text, attributed to it alone, is no leak);
        `reading`: the letters shared with the scanner of the other direction (`read_both`);
        `leak_letters`: NFKC letters a chain's span must also hold to be a leak (0: its hits
        alone decide; the strict threshold ignores it)."""
        self.index = index
        self.own = own
        self.policy = policy
        self.marker = marker
        self.blocked = False
        self.finished = False
        self.cut: int | None = None
        self.params = params
        self._stride = params.stride
        self._width = params.width
        self._needed = params.required_hits(strict)
        self.holdback = holdback(params) if index is not None else 0
        self._clearing = Clearing(params.width)
        # letters after a hit's start until no shared gram can still overlap it (`Clearing`)
        self._settle = 2 * params.width - 1 if index is not None and index.shares else params.width
        self._leak_letters = 0 if strict else leak_letters
        self._runs: list[_Run] = []  # short chains linked into runs, under a verdict in NFKC letters
        self._reading = reading or _Reading(
            index, params, not reverse, reverse, earlier is not None, self._leak_letters > 0
        )
        self._side = 1 if reverse else 0
        self._owners = self._reading.owners  # original offset of every guard letter so far
        self._pending = ""  # text received but not released yet, from offset `_released`
        self._released = 0
        self._open: dict[int, _Chain] = {}  # chains by the position of their next expected hit
        self._leaks: list[_Chain] = []  # closed leaks not released yet, by start
        self._regions: list[_Region] = []
        self._earlier = earlier  # fragments a run must not join; None: joins are not checked
        self._letters = self._reading.letters  # guard letters so far, kept only while joins are checked
        self.joins: list[Join] = []
        self._pieces: list[Fragment] = []  # this reply's own fragments, as its runs close

    @property
    def spans(self) -> tuple[LeakSpan, ...]:
        """Leaks found so far, merged where they touch."""
        return tuple(region.span() for region in self._regions)

    @property
    def held(self) -> int:
        """Counted grams of the index found in the text so far (both directions of a shared reading)."""
        return self._reading.held

    @property
    def in_documents(self) -> bool:
        """Whether one of them is some document's, not a chance hit of the filters (`_Reading`)."""
        return self._reading.in_documents()

    @property
    def sent_pieces(self) -> list[Fragment]:
        """Fragments of the runs that reached the client (not cut off, not redacted); kept
        only while joins are checked."""
        return [
            piece
            for piece in self._pieces
            if (self.cut is None or piece.end <= self.cut)
            and not any(r.start < piece.end and piece.start < r.end for r in self._regions)
        ]

    def feed(self, chunk: str) -> str:
        if self.blocked or self.finished:
            return ""
        return self._advance(chunk, self._reading.hits(chunk)[self._side])

    def _hits(self, chunk: str) -> Hits:
        """(start, key, shared) of each gram completed by `chunk` that the index holds."""
        return self._reading.hits(chunk)[self._side]

    def _advance(self, chunk: str, hits: Hits) -> str:
        """`feed` once the chunk's hits are known (the reading may be shared: `read_both`)."""
        if self.blocked or self.finished:
            return ""
        self._pending += chunk
        for position, key in self._counting(hits):
            self._hit(position, key)
        if self.policy == "block" and self._open:
            leak = self._settled_leak(self._reading.seen)
            if leak is not None:
                return self._block(leak)
        if self._open:
            self._close(self._reading.seen - self._width)
        if self._leaks and self.policy == "block":  # a run that joins an earlier fragment
            return self._block(self._leaks[0])
        return self._release(self._safe_limit())

    def finish(self) -> str:
        """The rest of the reply once the upstream is done (empty if the stream was blocked)."""
        if self.blocked or self.finished:
            return ""
        self.finished = True
        if self.policy == "block" and self._open:
            leak = self._settled_leak(None)
            if leak is not None:
                return self._block(leak)
        self._close(None)
        if self._leaks and self.policy == "block":
            return self._block(self._leaks[0])
        return self._release(self._reading.consumed)

    def _counting(self, hits: Hits) -> list[tuple[int, int]]:
        """The batch's hits that count (`Clearing`), after withdrawing from open chains the hits
        of earlier batches that a shared gram of this one overlaps."""
        if not hits:
            return []
        shared = [position for position, _, common in hits if common]
        if not shared and hits[0][0] >= self._clearing.reach:
            return [(position, key) for position, key, _ in hits]
        keep, shared = self._clearing.batch(shared)
        if keep is not None:
            self._withdraw(keep)
        counting = [
            (position, key)
            for position, key, common in hits
            if not common and self._clearing.counts(position, shared)
        ]
        self._clearing.close(shared)
        return counting

    def _withdraw(self, keep: int) -> None:
        """Cut open chains back to their hits at or before `keep` (a shared gram overlaps the rest)."""
        for expected, chain in [(e, c) for e, c in self._open.items() if c.last > keep]:
            del self._open[expected]
            if chain.first > keep:
                continue
            count = (keep - chain.first) // self._stride + 1
            chain.keys = chain.keys[:count]
            chain.last = chain.first + (count - 1) * self._stride
            self._open[chain.last + self._stride] = chain

    def _settled_leak(self, seen: int | None) -> _Chain | None:
        """The open chain whose first `hits` hits are a leak no shared gram can still withdraw
        (`seen`: letters so far; None at the end), the earliest to complete; as those hits."""
        found: _Chain | None = None
        for chain in self._open.values():
            if chain.own:
                continue
            settled = len(chain.keys)
            if seen is not None:
                settled = min(settled, (seen - self._settle - chain.first) // self._stride + 1)
            count = self._leak_hits(chain, settled)
            if count is None:
                continue
            done = chain.first + (count - 1) * self._stride
            if found is None or done < found.last:
                found = _Chain(chain.first, done, chain.keys[:count])
        return found

    def _leak_hits(self, chain: _Chain, count: int) -> int | None:
        """The fewest of the chain's first `count` hits that are a leak (None: not even all
        `count`): `hits` of them, and under a verdict in NFKC letters as many as it takes for
        their widened span to hold `leak_letters` of them, less those of the run it continues
        (`_prior`), whose chains need only `LINK_HITS` hits each."""
        prior = self._prior(chain)
        least = LINK_HITS if prior else self._needed
        if count < least:
            return None
        if not self._leak_letters:
            return self._needed
        need = self._leak_letters - prior
        if self._span_nfkc(chain.first, count) < need:
            return None
        low, high = least, count
        while low < high:
            middle = (low + high) // 2
            if self._span_nfkc(chain.first, middle) >= need:
                high = middle
            else:
                low = middle + 1
        return low

    def _prior(self, chain: _Chain) -> int:
        """NFKC letters of the short chains the chain continues, under a verdict in NFKC letters
        (0: none). A chain that closed too short to be a leak ends a run (`_Run`); the next
        continues it when it starts within `width` letters of the run's last gram and its first
        gram is in the same document a little further on, as far as the letters between them say
        (a common phrase, an edited syllable or a view's slip between two pieces of one copy,
        which held a leak's jamo each before the verdict counted syllables). Chance hits are in
        no document, and two phrases one reply shares with two places of a document are far
        apart in it: they link nothing."""
        if not self._runs:  # nearly always: most chains close with no run before them
            return 0
        return max(
            (
                run.letters
                for run in self._runs
                if run.end < chain.first <= run.end + 2 * self._width and self._follows(chain, run, True)
            ),
            default=0,
        )

    def _follows(self, chain: _Chain, run: _Run, from_start: bool) -> bool:
        """Whether one of the chain's first grams (`from_start`; else its last) is in a document
        of the run's last gram, the letters between them apart there too (within `width`)."""
        known = run.follows.get((chain.first, from_start))
        if known is not None and known[0] == run.end:
            return known[1]
        found = False
        for position, key in self._ends(chain, from_start):
            for doc, ordinal in self._places(key):
                for run_doc, run_ordinal in run.places:
                    apart = (position - run.end) - (ordinal - run_ordinal) * self._stride
                    found = found or (doc == run_doc and ordinal > run_ordinal and abs(apart) <= self._width)
        run.follows[chain.first, from_start] = (run.end, found)
        return found

    def _places(self, key: int) -> frozenset[tuple[int, int]]:
        """(document, ordinal) of an indexed gram (none for a chance hit, or without a table)."""
        if self.index is None or not self.index.docs.present:
            return frozenset()
        hits = self.index.docs.lookup(np.array([key], dtype=np.uint64))
        return frozenset((hit.doc, hit.ordinal) for hit in hits)

    def _ends(self, chain: _Chain, from_start: bool) -> list[tuple[int, int]]:
        """(position, key) of the chain's first or last `LINK_HITS` + 1 hits, outermost first: a
        chain may reach a hit into the words around it by chance (a filter hit no document has)."""
        count = min(len(chain.keys), LINK_HITS + 1)
        at = range(count) if from_start else range(len(chain.keys) - 1, len(chain.keys) - 1 - count, -1)
        return [(chain.first + i * self._stride, chain.keys[i]) for i in at]

    def _last_place(self, chain: _Chain) -> tuple[int, frozenset[tuple[int, int]]]:
        """The position and the places of the chain's last gram that a document has (none: no place)."""
        for position, key in self._ends(chain, from_start=False):
            places = self._places(key)
            if places:
                return position, places
        return chain.last, frozenset()

    def _span_nfkc(self, first: int, count: int) -> int:
        """NFKC letters of `count` hits from `first`, widened (`_letters_around`), in the
        letters read so far."""
        return self._reading.nfkc_letters(*self._letters_around(first, first + (count - 1) * self._stride))

    def _letters_around(self, first: int, last: int) -> tuple[int, int]:
        """Guard letters [start, end) of hits from `first` to `last` widened by `stride − 1`
        letters each side (a copy may reach that far past its grams), within those read."""
        reach = self._width + self._stride - 1
        return max(0, first - self._stride + 1), min(len(self._owners), last + reach)

    def _hit(self, position: int, key: int) -> _Chain | None:
        """Extend or start a chain; returns it when it has just become a leak."""
        chain = self._open.pop(position, None) or _Chain(position, position)
        chain.last = position
        chain.keys.append(key)
        self._open[position + self._stride] = chain
        if len(chain.keys) != self._needed:
            return None
        if self.own is not None and self.index is not None:
            chain.own = self.index.owned_by(np.array(chain.keys, dtype=np.uint64), self.own)
        return None if chain.own else chain

    def _close(self, checked: int | None) -> None:
        """Retire chains whose next hit did not come (all of them at the end of the reply); one
        of a leak's hits once no shared gram can still withdraw its hits (`_settle`)."""
        settled = self._reading.seen - self._settle
        found = False
        # a chain shorter than a leak and a run's link (most are one chance hit) goes at once
        # when there is no fragment for it to join: nothing orders or counts it
        least = min(LINK_HITS, self._needed) if self._earlier is None else 0
        closing = []
        for e, chain in list(self._open.items()):
            hits = len(chain.keys)
            if checked is None or (e <= checked and (hits < self._needed or chain.last <= settled)):
                if hits < least:
                    del self._open[e]
                else:
                    closing.append(e)
        if self._leak_letters and closing:
            # runs link in the order chains start, whatever the chunking: a chain waits for the
            # open ones that start before it (one of a leak's hits waits to settle)
            staying = [c.first for e, c in self._open.items() if e not in closing]
            closing = [e for e in closing if not staying or self._open[e].first < min(staying)]
        if len(closing) > 1:
            closing.sort(key=lambda e: self._open[e].first)
        for expected in closing:
            chain = self._open.pop(expected)
            if chain.own:
                continue
            if self._leak_hits(chain, len(chain.keys)) is not None or self._joins_earlier(chain):
                self._leaks.append(chain)
                self._runs = []
                found = True
            elif self._leak_letters and len(chain.keys) >= LINK_HITS:
                self._link(chain)
        if found:
            self._leaks.sort(key=lambda chain: chain.first)

    def _link(self, chain: _Chain) -> None:
        """Make a short chain the end of a run `_prior` reads: another alignment inside one that
        goes on past its end in the same document (a letter dropped or added) extends it, one
        that continues it lengthens it, any other starts one. Runs the chain is past are dropped."""
        end, places = self._last_place(chain)
        if not places:
            return
        self._runs = [run for run in self._runs if chain.first <= run.end + 2 * self._width]
        for run in self._runs:
            if chain.first <= run.end:
                if end > run.end and self._follows(chain, run, False):
                    run.letters += self._reading.nfkc_letters(
                        self._letters_around(run.end, run.end)[1], self._letters_around(end, end)[1]
                    )
                    run.end, run.places = end, places
                    return
            elif self._follows(chain, run, True):
                run.letters += self._span_nfkc(chain.first, len(chain.keys))
                run.end, run.places = end, places
                return
        self._runs.append(_Run(self._span_nfkc(chain.first, len(chain.keys)), end, places))

    def _joins_earlier(self, chain: _Chain) -> bool:
        """Whether a run too short to be a leak joins an earlier fragment, either way round, into
        one: a passage taken piece by piece. A run that does not is kept as a fragment in its
        turn; under a verdict in NFKC letters, with the letters of the run it joined so far."""
        if self._earlier is None or self.index is None:
            return False
        keys = np.array(chain.keys, dtype=np.uint64)
        letters = self._span_nfkc(chain.first, len(chain.keys)) if self._leak_letters else 0
        piece = make_fragment(self.index, self._letters, self._owners, keys, chain.first, chain.last, letters)
        if piece is None:
            return False
        found = joins([piece], self._earlier, self.index)
        if found and self._leak_letters:
            total = joined_letters(piece, found)
            if total is not None and total < self._leak_letters:
                piece, found = replace(piece, letters=total), []
        self.joins += found
        if not found:
            self._earlier.append(piece)
            self._pieces.append(piece)
        return bool(found)

    def _widened(self, chain: _Chain) -> tuple[int, int]:
        """The chain's grams widened by `stride − 1` letters each side, as original offsets."""
        first, end = self._letters_around(chain.first, chain.last)
        return self._owners[first], self._owners[end - 1] + 1

    def _region(self, chain: _Chain) -> _Region:
        start, end = self._widened(chain)
        owners = _owners(self.index, chain.keys) if self.index else ()
        return _Region(start, end, [(chain.first, chain.last + self._width)], set(owners))

    def _safe_limit(self) -> int:
        """Original offset before which nothing can still turn out to be part of a leak."""
        if not self.holdback:
            return self._reading.consumed
        letter = len(self._owners) - self.holdback
        for chain in self._open.values():
            letter = min(letter, chain.first - self._stride + 1)
        return self._owners[letter] if letter > 0 else 0

    def _release(self, limit: int) -> str:
        """Text from the last release up to `limit`, each leak replaced by the marker."""
        out: list[str] = []
        while self._leaks and self._widened(self._leaks[0])[0] < max(limit, self._released + 1):
            region = self._region(self._leaks.pop(0))
            if self._regions and region.start <= self._regions[-1].end:
                last = self._regions[-1]
                last.end = max(last.end, region.end)
                last.cores += region.cores
                last.partners |= region.partners
            else:
                out += [self._take(region.start), self.marker]
                self._regions.append(region)
            self._skip(region.end)
        if limit > self._released:
            out.append(self._take(limit))
        return "".join(out)

    def _take(self, end: int) -> str:
        """Release the original text up to offset `end`."""
        piece = self._pending[: end - self._released]
        self._skip(end)
        return piece

    def _skip(self, end: int) -> None:
        if end > self._released:
            self._pending = self._pending[end - self._released :]
            self._released = end

    def _block(self, chain: _Chain) -> str:
        """End the stream at the leak's start: what is before it is safe to send."""
        region = self._region(chain)
        region.start = max(self._released, region.start)
        self.blocked = True
        self.cut = region.start
        self._regions = [region]
        return self._take(region.start)


def _owners(index: GuardIndex, found: list[int]) -> tuple[int, ...]:
    """The partners of a leak's keys; failing that, of the keys less a hit at either end, while
    a leak's worth of hits is left: a chain can reach into the words around the copy by one
    chance hit, which no partner holds (in a filter loaded as designed, 2.3 % of positions hit
    by chance). A chain is cut only while a leak's worth of hits is left, so a short one is never
    cut: its lone remaining key would name a partner on too little (in a generation with
    attribution filters, one chance key is held by some partner's one time in ten)."""
    keys, count = np.array(found, dtype=np.uint64), len(found)
    for lo, hi in ((0, 0), (1, 0), (0, 1), (1, 1)):
        if lo + hi == 0 or count - lo - hi >= index.params.hits:
            partners = index.attribute(keys[lo : count - hi])
            if partners:
                return partners
    return ()


def read_both(
    index: GuardIndex | None,
    params: IndexParams,
    policy: Policy = "block",
    strict: bool = False,
    marker: str = REDACTION,
    earlier: list[Fragment] | None = None,
    own: int | None = None,
    leak_letters: int = 0,
) -> tuple[StreamScanner, StreamScanner]:
    """A scanner of a text and one of the same text written backwards, on one reading: feed
    both with `feed_both`. Only the first tests joins (`earlier`)."""
    reading = _Reading(index, params, True, True, earlier is not None, leak_letters > 0 and not strict)
    return (
        StreamScanner(index, params, policy, strict, marker, earlier, False, own, reading, leak_letters),
        StreamScanner(index, params, policy, strict, marker, None, True, own, reading, leak_letters),
    )


def feed_both(ahead: StreamScanner, behind: StreamScanner, chunk: str) -> tuple[str, str]:
    """`feed` of both scanners of `read_both`, the chunk normalised, hashed and looked up once."""
    forward, backward = ahead._reading.hits(chunk)
    return ahead._advance(chunk, forward), behind._advance(chunk, backward)


class LeakScanner:
    """The gateway's guard for replies: whole-text scans and streaming scanners on one index."""

    def __init__(
        self,
        index: GuardIndex | LiveIndex | None,
        marker: str = REDACTION,
        stream_batch: int | None = None,
        leak_letters: int = 0,
    ) -> None:
        """`stream_batch`: the largest batch of a stream scanned in every view (None: the default);
        `leak_letters`: NFKC letters a copied run must also hold to be a leak (`StreamScanner`)."""
        self._source = index
        self.marker = marker
        self.stream_batch = stream_batch
        self.leak_letters = leak_letters

    def current(self) -> GuardIndex | None:
        return self._source.current() if isinstance(self._source, LiveIndex) else self._source

    def stream(
        self, policy: Policy = "block", strict: bool = False, earlier: list[Fragment] | None = None
    ) -> StreamScanner:
        """A scanner for one reply; with `earlier` (a list, maybe empty) runs that join those
        fragments, or each other, are cut as leaks too."""
        index = self.current()
        params = index.params if index is not None else IndexParams.for_leak_length(seed=0)
        return StreamScanner(
            index, params, policy, strict, self.marker, earlier, leak_letters=self.leak_letters
        )

    def scan(self, text: str, strict: bool = False, earlier: list[Fragment] | None = None) -> ScanResult:
        """Every leak in a whole reply (with `earlier`, runs that join them too, and the reply's
        own fragments), and the reply with each replaced by the marker."""
        scanner = self.stream("redact", strict, earlier)
        redacted = scanner.feed(text) + scanner.finish()
        return ScanResult(scanner.spans, redacted, tuple(scanner.joins), tuple(scanner.sent_pieces))

    def watch(
        self,
        policy: Policy = "block",
        strict: bool = False,
        earlier: list[Fragment] | None = None,
        own: int | None = None,
    ) -> ViewScanner:
        """`stream` in every canonical view (`guard/detection/views.py`): what the gateway uses. `own`:
        the partner reading, whose own text passes."""
        from tokenclub.guard.detection.views import BATCH_LIMIT, ViewScanner

        index = self.current()
        params = index.params if index is not None else IndexParams.for_leak_length(seed=0)
        limit = BATCH_LIMIT if self.stream_batch is None else self.stream_batch
        return ViewScanner(index, params, policy, strict, self.marker, earlier, own, limit, self.leak_letters)

    def inspect(
        self, text: str, strict: bool = False, earlier: list[Fragment] | None = None, own: int | None = None
    ) -> ScanResult:
        """`scan` in every canonical view."""
        scanner = self.watch("redact", strict, earlier, own)
        redacted = scanner.feed(text) + scanner.finish()
        joins, pieces = tuple(scanner.joins), tuple(scanner.sent_pieces)
        return ScanResult(scanner.spans, redacted, joins, pieces, scanner.quiet)
