"""Copied fragments of earlier replies, and the joins that rebuild a passage from them.

Sentence-by-sentence extraction asks for one short piece per request; each reply holds fewer
than the leak length of copied letters and passes on its own. The pieces are consecutive in
the source, so a reply's copied run (a chain of stride-spaced gram hits) ends where the next
one begins. Joined, their letters hold the stride-aligned grams that straddle the seam, and
those grams are in the index. A *fragment* keeps just what that test needs, the ends of a run:
prefix polynomials of the few letters around its first and last hit, under the index's keyed
base, never the letters themselves. Two fragments *join* when the grams across the seam, each
partly from either fragment, all hit the index, and with the hit after the seam they make a
chain of at least `hits` grams: the joined pieces hold a leak.

Where the seam lies is known to within a few letters: a run ends between `width` and
`width + stride − 1` letters after its last hit (one more letter would complete the next aligned
gram, a hit) and begins up to `stride − 1` letters before its first hit; either may also reach
a few letters into the words around it when they happen to go on like the source (a Korean
reply's next syllable often starts with the same ㅇ). So every seam within `stride` letters
more on either side is tried whose alignment matches both runs' hits, each with the
`⌈width / stride⌉` or so aligned grams that straddle it. A reply's runs are tested against a
customer's earlier fragments all at once: every pair is screened on the first two grams of
every seam in one vectorised look-up, and only the few that pass are tested one by one.

Runs shorter than `width + stride − 1` letters may hold no aligned gram, so they leave no
fragment: pieces that short are not seen (docs/leak-guard.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tokenclub.guard.hashing import MASK64, U64, GramHash, splitmix, splitmix_int
from tokenclub.guard.indexing.index import GuardIndex
from tokenclub.guard.normalize import normalize


@dataclass(frozen=True, slots=True)
class Fragment:
    """The ends of one copied run: enough to test it against the runs of other replies.

    `tail[i]` is the polynomial of the first `i` letters of a window that holds the last hit at
    `last`, from `stride` letters before it to where the run can end; `head[t]` likewise for a
    window around the first hit, at `first`. `start`/`end` are the run's widened offsets in the
    reply it came from (kept for redaction, not in the database); `letters`: NFKC letters of
    the run and of the runs it was found to join so far (0: not counted)."""

    hits: int
    partners: tuple[int, ...]
    first: int
    head: tuple[int, ...]
    last: int
    tail: tuple[int, ...]
    start: int = 0
    end: int = 0
    letters: int = 0


@dataclass(frozen=True, slots=True)
class Join:
    """`first` followed by `second` is one copied run of `partners`' text: the `seam_grams`
    aligned grams across the seam are all in the index."""

    first: Fragment
    second: Fragment
    seam_grams: int
    partners: tuple[int, ...]


@lru_cache(maxsize=8)
def _spec(width: int, seed: int) -> GramHash:
    return GramHash(width, seed)


def _prefixes(letters: Sequence[int], spec: GramHash) -> tuple[int, ...]:
    """Polynomials of the first 0, 1, 2, … letters, by Horner's rule modulo 2^64, started from
    the secret key rather than 0 so that no value is a letter (differences cancel it)."""
    out = [spec.key]
    for letter in letters:
        out.append((out[-1] * spec.base + letter) & MASK64)
    return tuple(out)


def _chains(hits: list[int], stride: int) -> list[tuple[int, int]]:
    """(first, last) of each run of hit positions spaced exactly `stride` apart."""
    open_: dict[int, list[int]] = {}
    for position in hits:
        chain = open_.pop(position, None) or [position, position]
        chain[1] = position
        open_[position + stride] = chain
    return sorted((first, last) for first, last in open_.values())


def _owned(
    index: GuardIndex, keys: U64, first: int, last: int
) -> tuple[int, int, int, tuple[int, ...]] | None:
    """A chain's (first, last, hits) and owners from the keys of its hits; failing that, the
    chain less a hit at either end: a run that reaches into the words around it by chance
    ends in a hit no partner holds."""
    stride, count = index.params.stride, len(keys)
    for lo, hi in ((0, 0), (1, 0), (0, 1), (1, 1)):
        if lo + hi < count:
            partners = index.attribute(keys[lo : count - hi])
            if partners:
                return first + lo * stride, last - hi * stride, count - lo - hi, partners
    return None


def make_fragment(
    index: GuardIndex,
    letters: Sequence[int],
    owners: Sequence[int],
    keys: U64,
    first: int,
    last: int,
    nfkc: int = 0,
) -> Fragment | None:
    """The fragment of one chain of hits (`keys`, from `first` to `last`) in a stream of guard
    letters whose original offsets are `owners`, the run holding `nfkc` NFKC letters (0: not
    counted); None when no partner owns it."""
    owned = _owned(index, keys, first, last)
    if owned is None:
        return None
    first, last, count, partners = owned
    params = index.params
    spec = _spec(params.width, params.seed)
    reach = params.width + params.stride - 1
    head_from, tail_from = max(0, first - params.stride + 1), max(0, last - params.stride)
    head = _prefixes(letters[head_from : first + reach], spec)
    tail = _prefixes(letters[tail_from : last + reach], spec)
    start, end = owners[head_from], owners[min(len(letters), last + reach) - 1] + 1
    return Fragment(count, partners, first - head_from, head, last - tail_from, tail, start, end, nfkc)


def joined_letters(piece: Fragment, found: Sequence[Join]) -> int | None:
    """NFKC letters of the run `piece` and the fragments it joins (`found`) make: its own and
    the longest joined on either side (each holds the runs it joined before). None when one of
    them was not counted (kept by a guard whose verdict counts guard letters): the join is a
    leak, as under that verdict. The seam's few letters count twice: the sum errs long."""
    before = [join.first.letters for join in found if join.second is piece]
    after = [join.second.letters for join in found if join.first is piece]
    if not piece.letters or 0 in before or 0 in after:
        return None
    return piece.letters + max(before, default=0) + max(after, default=0)


def fragments_of(index: GuardIndex, text: str) -> list[Fragment]:
    """Every copied run of `text` that the index gives to a partner (`GuardIndex.attribute`)."""
    width, stride = index.params.width, index.params.stride
    normalized = normalize(text)
    if len(normalized.letters) < width:
        return []
    spec = _spec(width, index.params.seed)
    keys = spec.at(normalized.letters, np.arange(len(normalized.letters) - width + 1, dtype=np.int64))
    letters, owners = normalized.letters.tolist(), normalized.owners.tolist()
    found = (
        make_fragment(index, letters, owners, keys[first : last + 1 : stride], first, last)
        for first, last in _chains(np.flatnonzero(index.counted(keys)).tolist(), stride)
    )
    return [fragment for fragment in found if fragment is not None]


@lru_cache(maxsize=8)
def _powers(base: int) -> tuple[int, ...]:
    """base⁰ … base⁶³ modulo 2^64: every length a fragment window can have."""
    return tuple(pow(base, n, 1 << 64) for n in range(64))


def _poly(prefixes: tuple[int, ...], start: int, end: int, powers: tuple[int, ...]) -> int:
    """Polynomial of the letters [start, end) of a window, from its prefix polynomials."""
    return (prefixes[end] - prefixes[start] * powers[end - start]) & MASK64


@dataclass(frozen=True, slots=True)
class _Seam:
    """One seam shape, relative to the first run's last hit and the second run's first hit."""

    end: int  # where the first run ends, letters after its last hit
    begin: int  # where the second run starts, letters after its first hit
    straddle: int  # the first straddling gram's start, letters after the first run's last hit
    theirs: int  # letters of that gram in the second run


@lru_cache(maxsize=8)
def _seam_shapes(width: int, stride: int, hits: int) -> tuple[_Seam, ...]:
    """Every seam two runs may meet at, as offsets from their hits, in the order `join` tries
    them: the first run ends `width − stride` to `width + stride − 1` letters after its last hit,
    the second begins up to `stride` letters either side of its first, and the two hits' strides
    line up. A fragment far from the ends of its reply holds them all."""
    shapes = []
    for end in range(max(1, width - stride), width + stride):
        straddle = (end - width) // stride * stride + stride  # the first aligned start past end − width
        if len(range(straddle, end, stride)) + 1 < hits:
            continue
        for begin in range(1 - stride, stride + 1):
            if (end - begin) % stride == 0:
                shapes.append(_Seam(end, begin, straddle, straddle + width - end))
    return tuple(shapes)


def _straddling(last: int, end: int, width: int, stride: int) -> range:
    """Starts, in the tail window, of the grams aligned with the hit at `last` that cross `end`."""
    position = last - (last - (end - width + 1)) // stride * stride
    return range(max(position, position % stride), end, stride)


def join(first: Fragment, second: Fragment, index: GuardIndex) -> Join | None:
    """`first` then `second` as one run of indexed text, if the grams across a seam say so."""
    partners = tuple(sorted(set(first.partners) & set(second.partners)))
    if not partners:
        return None
    params = index.params
    spec = _spec(params.width, params.seed)
    powers = _powers(spec.base)

    def key(start: int, end: int, begin: int) -> int:
        theirs = start + params.width - end
        left = _poly(first.tail, start, end, powers)
        right = _poly(second.head, begin, begin + theirs, powers)
        return splitmix_int((left * powers[theirs] + right) & MASK64 ^ spec.key)

    seams = []
    for shape in _seam_shapes(params.width, params.stride, params.hits):
        end, begin = first.last + shape.end, second.first + shape.begin
        if end >= len(first.tail) or begin < 0 or begin + params.width > len(second.head):
            continue  # the first run's reply ends before the seam, or the second's starts after
        starts = _straddling(first.last, end, params.width, params.stride)
        if len(starts) + 1 >= params.hits:
            seams.append((end, begin, starts))
    # the first gram across each seam, all in one look-up: nearly every seam fails there
    held = index.contains_keys([key(starts[0], end, begin) for end, begin, starts in seams])
    for (end, begin, starts), first_held in zip(seams, held, strict=True):
        if first_held and all(index.contains_keys([key(start, end, begin) for start in starts[1:]])):
            return Join(first, second, len(starts), partners)
    return None


def _windows(fragments: Sequence[Fragment], tails: bool, low: int, size: int) -> tuple[U64, np.ndarray]:
    """Each fragment's tail (or head) values re-indexed from `low` letters after its last (first)
    hit, with a mask of the positions its window holds."""
    values = np.zeros((len(fragments), size), dtype=np.uint64)
    held = np.zeros((len(fragments), size), dtype=np.bool_)
    for row, fragment in enumerate(fragments):
        window, anchor = (fragment.tail, fragment.last) if tails else (fragment.head, fragment.first)
        start = anchor + low  # window index of canonical position 0
        lo, hi = max(0, -start), min(size, len(window) - start)
        if lo < hi:
            values[row, lo:hi] = window[start + lo : start + hi]
            held[row, lo:hi] = True
    return values, held


def _maybe_joined(firsts: Sequence[Fragment], seconds: Sequence[Fragment], index: GuardIndex) -> np.ndarray:
    """Pairs (first, second) that may join: for some seam the first two straddling grams hit (or
    one would start before the first run's reply). A superset of the pairs `join` accepts,
    computed for all pairs at once."""
    params = index.params
    width, stride = params.width, params.stride
    spec = _spec(width, params.seed)
    powers = np.array(_powers(spec.base), dtype=np.uint64)
    tails, tails_held = _windows(firsts, True, -stride, width + 2 * stride)
    heads, heads_held = _windows(seconds, False, 1 - stride, width + 2 * stride)
    shape = (len(firsts), len(seconds))
    seams = _seam_shapes(width, stride, params.hits)
    if not seams:  # a stride so long that no seam holds a chain's grams (leak lengths from 70)
        return np.zeros(shape, dtype=np.bool_)
    # per seam: its first two straddling grams (one alone lets a pair in ~40 through by chance)
    grams = [
        (seam, straddle, straddle + width - seam.end)
        for seam in seams
        for straddle in (seam.straddle, seam.straddle + stride)
    ]
    keys = []
    for seam, straddle, theirs in grams:
        e, b, p = seam.end + stride, seam.begin + stride - 1, straddle + stride
        left = tails[:, e] - tails[:, p] * powers[seam.end - straddle]
        right = heads[:, b + theirs] - heads[:, b] * powers[theirs]
        keys.append((left[:, np.newaxis] * powers[theirs] + right[np.newaxis, :]).ravel())
    held = index.contains(splitmix(np.concatenate(keys) ^ np.uint64(spec.key))).reshape(len(grams), *shape)
    maybe = np.zeros(shape, dtype=np.bool_)
    for i, seam in enumerate(seams):
        e, b = seam.end + stride, seam.begin + stride - 1
        # the seam exists where both windows hold its ends (a run cannot end past its reply);
        # where a gram would start before the first run's reply, `join` decides
        exists = tails_held[:, e][:, np.newaxis] & heads_held[:, b][np.newaxis, :]
        for j, (_, straddle, theirs) in enumerate(grams[2 * i : 2 * i + 2]):
            unknown = ~tails_held[:, straddle + stride][:, np.newaxis]
            exists &= heads_held[:, b + theirs][np.newaxis, :] & (unknown | held[2 * i + j])
        maybe |= exists
    return maybe


def joins(new: list[Fragment], earlier: list[Fragment], index: GuardIndex) -> list[Join]:
    """Joins of a reply's fragments with each other and, either way round, with earlier ones.
    Against earlier fragments all pairs are screened at once (`_maybe_joined`) and only the few
    that pass are tested one by one."""
    pairs = [(a, b) for a in new for b in new if a is not b]
    if new and earlier:
        for firsts, seconds in ((earlier, new), (new, earlier)):
            rows, cols = np.nonzero(_maybe_joined(firsts, seconds, index))
            pairs += [(firsts[r], seconds[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
    return [found for a, b in pairs if (found := join(a, b, index)) is not None]
