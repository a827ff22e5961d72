"""Neighbours: a reply too short to carry a whole indexed gram, sent next to another reply's run.

The index holds a document's grams at stride-aligned starts only (`width` letters every
`stride`), so a piece of fewer than `width + stride − 1` letters may hold none of them and be
invisible on its own. Beside a run that another reply delivered it is not: the aligned grams
that straddle the run's end are made of the run's last letters and the piece's first ones
(and at the run's start, of the piece's last letters and the run's first). Joining the two
replies' letters at that seam and looking the straddling grams up in the index shows that the
piece continues the document there, with no document text kept anywhere.

A reply's `Edge` (per document it carries a run of) holds its letters around the run's ends;
every reply's `Ends` hold its first and last letters. A straddling gram counts only when the
other reply gives at least `GIVEN` of its letters, and only at its exact ordinal beside the
run, so a chance letter or a common word ending never extends a run. Which letters of the seam belong to the
run is not known (the reply may copy up to `stride − 1` letters past its last aligned gram, or
before its first): every such split is tried.

The grams' keys are polynomial hashes (`guard/hashing.py`), so a straddling gram's key is the
run's share of the polynomial, computed once per edge (`Seams`), combined with the other
reply's share, computed once per reply (`Ends`): P(x ‖ y) = P(x)·B^|y| + P(y). Checking a
reply against every kept edge, or an edge against every kept reply's ends, is then a few
array operations and one filter look-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from tokenclub.guard.hashing import MASK64, U64, gram_hash
from tokenclub.guard.indexing.index import GuardIndex, IndexParams
from tokenclub.guard.normalize import char_letters

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
GIVEN = 12
"""Letters of a straddling gram that the other reply must give for it to count: fewer are a
common ending or opening ("…했습니다", 11 letters) as often as a piece of the document."""


def _poly(letters: Sequence[int], base: int) -> int:
    value = 0
    for letter in letters:
        value = (value * base + letter) & MASK64
    return value


class Ends:
    """A reply's first and last `width − 1` guard letters, and (`polys`, worked out the first
    time another reply's edge is checked against them) the polynomials of their prefixes and
    suffixes."""

    __slots__ = ("_polys", "head", "tail")

    def __init__(self, head: tuple[int, ...], tail: tuple[int, ...]) -> None:
        self.head = head
        self.tail = tail
        self._polys: tuple[U64, U64] | None = None

    def polys(self, base: int, width: int) -> tuple[U64, U64]:
        """(P(first g letters), P(last g letters)) for g = 0 … width − 1 (0 past the letters)."""
        if self._polys is None:
            heads = [0] * width
            for g, letter in enumerate(self.head, 1):
                heads[g] = (heads[g - 1] * base + letter) & MASK64
            tails = [0] * len(heads)
            power = 1
            for g, letter in enumerate(reversed(self.tail), 1):
                tails[g] = (letter * power + tails[g - 1]) & MASK64
                power = power * base & MASK64
            self._polys = (np.array(heads, dtype=np.uint64), np.array(tails, dtype=np.uint64))
        return self._polys


def ends_of(text: str, params: IndexParams) -> Ends:
    """The text's `Ends`, reading only as many characters from each end as it takes."""
    want = params.width - 1
    head: list[int] = []
    for char in text:
        head += char_letters(char)
        if len(head) >= want:
            break
    tail: list[int] = []
    for char in reversed(text):
        tail += reversed(char_letters(char))
        if len(tail) >= want:
            break
    return Ends(tuple(head[:want]), tuple(reversed(tail[:want])))


@dataclass(frozen=True, slots=True)
class Edge:
    """A reply's run of one document: its first and last ordinals, and the reply's letters from
    `lead` (≤ stride − 1) before the first gram to `width − stride` after its start (`before`),
    and from `stride` after the last gram's start to `width + stride − 1` (`after`)."""

    doc: int
    first: int
    last: int
    before: tuple[int, ...]
    lead: int
    after: tuple[int, ...]


def edges_of(
    letters: Sequence[int], runs: dict[int, tuple[tuple[int, int], tuple[int, int]]], params: IndexParams
) -> list[Edge]:
    """The `Edge` of each document's run in a reply's letters; `runs`: document → ((position,
    ordinal) of its first gram, (position, ordinal) of its last)."""
    width, stride = params.width, params.stride
    found: list[Edge] = []
    for doc, ((p_first, first), (p_last, last)) in sorted(runs.items()):
        lead = min(stride - 1, p_first)
        found.append(
            Edge(
                doc,
                first,
                last,
                tuple(letters[p_first - lead : p_first + width - stride]),
                lead,
                tuple(letters[p_last + stride : p_last + width + stride - 1]),
            )
        )
    return found


@dataclass(frozen=True, slots=True, eq=False)
class Seams:
    """The grams straddling runs' ends, a row each: the document and ordinal, how many letters
    the other reply gives (`given`) and from which of its ends (`forward`: its head, after the
    run; else its tail, before it), and the run's share: the gram's polynomial is
    `other · mult + add`, `other` the polynomial of the other reply's `given` letters."""

    doc: I64
    ordinal: I64
    given: I64
    forward: Bools
    mult: U64
    add: U64

    def __len__(self) -> int:
        return len(self.doc)

    def where(self, mask: Bools) -> Seams:
        return Seams(*(getattr(self, f.name)[mask] for f in fields(Seams)))


def seams_of(edge: Edge, params: IndexParams) -> Seams:
    """Every gram that may straddle the edge's two ends, with the run's share worked out."""
    width, stride = params.width, params.stride
    base = gram_hash(width, params.seed).base
    reach = (width - 1) // stride  # neighbouring grams that still share a letter with the run
    rows: list[tuple[int, int, bool, int, int]] = []  # ordinal, given, forward, mult, add
    shared = width - stride
    for extra in range(min(stride - 1, len(edge.after) - shared) + 1):
        for j in range(1, reach + 1):
            given = stride * j - extra  # letters of gram last + j from the other reply's head
            if GIVEN <= given < width:
                mine = _poly(edge.after[stride * (j - 1) : shared + extra], base)
                rows.append((edge.last + j, given, True, 1, mine * pow(base, given, 1 << 64) & MASK64))
    for extra in range(edge.lead + 1):
        for j in range(1, reach + 1):
            given = stride * j - extra  # letters of gram first − j from the other reply's tail
            if GIVEN <= given < width and edge.first - j >= 0:
                start = edge.lead - extra
                mine = _poly(edge.before[start : start + width - given], base)
                rows.append((edge.first - j, given, False, pow(base, width - given, 1 << 64), mine))
    return Seams(
        np.full(len(rows), edge.doc, dtype=np.int64),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.bool_),
        np.array([r[3] for r in rows], dtype=np.uint64),
        np.array([r[4] for r in rows], dtype=np.uint64),
    )


def joined_seams(parts: Sequence[Seams]) -> Seams:
    """Many edges' seams as one."""
    return Seams(*(np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(Seams)))


def straddled(index: GuardIndex, seams: Seams, ends: Sequence[Ends]) -> list[dict[int, set[int]]]:
    """Per reply's `Ends`: the documents' ordinals (of `seams`) whose grams that reply's letters
    complete, looked up together."""
    found: list[dict[int, set[int]]] = [{} for _ in ends]
    if not len(seams) or not ends:
        return found
    gram = gram_hash(index.params.width, index.params.seed)
    polys = [e.polys(gram.base, gram.width) for e in ends]
    heads = np.stack([h for h, _ in polys])[:, seams.given]
    tails = np.stack([t for _, t in polys])[:, seams.given]
    lengths = np.where(
        seams.forward[None, :],
        np.array([len(e.head) for e in ends])[:, None],
        np.array([len(e.tail) for e in ends])[:, None],
    )
    valid = seams.given[None, :] <= lengths
    other = np.where(seams.forward[None, :], heads, tails)
    raw = other * seams.mult[None, :] + seams.add[None, :]
    reply, row = np.nonzero(valid)
    keys = gram.finish(raw[reply, row])
    held = np.flatnonzero(index.contains(keys))
    for slot, hit in index.docs.lookup_at(keys[held]) if len(held) else ():
        at, r = int(reply[held[slot]]), int(row[held[slot]])
        if (hit.doc, hit.ordinal) == (int(seams.doc[r]), int(seams.ordinal[r])):
            found[at].setdefault(hit.doc, set()).add(hit.ordinal)
    return found
