"""Keyed hashes of fixed-width letter n-grams, the same whether a stream is hashed whole or in pieces.

A gram starting at position i has the polynomial hash ``G(i) = Σ_j c[i+j]·B^(w-1-j) mod 2^64``
with a base B drawn from the index's secret seed. Written with the prefix sums
``A(n) = Σ_{j<n} c[j]·B^-j`` (B is odd, so invertible modulo 2^64) it becomes
``G(i) = B^(i+w-1)·(A(i+w) - A(i))``: one cumulative sum and one cumulative product give every
gram of a text in a few vectorised operations, and a stream only needs its last w prefix sums
to continue. The polynomial hash is then finalised with SplitMix64 so that Bloom positions are
uniform. The seed keys the index: without it, its bits cannot be queried for a guessed text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

MASK64 = (1 << 64) - 1
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15


def splitmix(x: U64) -> U64:
    """SplitMix64's finaliser over an array: a bijection that spreads every input bit."""
    z = x ^ (x >> np.uint64(30))
    z = z * _MIX1
    z = z ^ (z >> np.uint64(27))
    z = z * _MIX2
    mixed: U64 = z ^ (z >> np.uint64(31))
    return mixed


def splitmix_int(x: int) -> int:
    """`splitmix` for one Python integer (seeds, salts)."""
    return int(splitmix(np.array([x & MASK64], dtype=np.uint64))[0])


def _powers(first: int, base: int, count: int) -> U64:
    """first, first·base, first·base², … modulo 2^64 (`count` of them)."""
    steps = np.full(count, base, dtype=np.uint64)
    if count:
        steps[0] = first
    return np.multiply.accumulate(steps, dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class GramHash:
    """The keyed hash of width-`width` grams; everything derives from `seed`."""

    width: int
    seed: int
    base: int = field(init=False)
    inverse: int = field(init=False)
    key: int = field(init=False)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError("gram width must be at least 1")
        base = splitmix_int(self.seed ^ _GOLDEN) | 1
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "inverse", pow(base, -1, 1 << 64))
        object.__setattr__(self, "key", splitmix_int(self.seed + 2 * _GOLDEN))

    def finish(self, raw: U64) -> U64:
        return splitmix(raw ^ np.uint64(self.key))

    def at(self, letters: U32, starts: I64) -> U64:
        """Keys of the grams of one text that start at `starts` (each must fit in the text)."""
        prefix = np.zeros(len(letters) + 1, dtype=np.uint64)
        np.cumsum(letters.astype(np.uint64) * _powers(1, self.inverse, len(letters)), out=prefix[1:])
        lift = _powers(1, self.base, len(letters))
        ends = starts + self.width
        return self.finish(lift[ends - 1] * (prefix[ends] - prefix[starts]))


class RollingHasher:
    """Keys of every gram of a stream, fed in pieces; the keys do not depend on the pieces."""

    def __init__(self, spec: GramHash) -> None:
        self.spec = spec
        self.seen = 0
        self._tail = np.zeros(spec.width, dtype=np.uint64)  # A(seen-w+1) … A(seen)
        self._lift = 1  # base^seen and inverse^seen, carried so a small piece costs no big power
        self._sink = 1

    def feed(self, letters: U32) -> tuple[int, U64]:
        """(start of the first new gram, keys of the grams that the new letters complete)."""
        width, first = self.spec.width, self.seen
        count = len(letters)
        if not count:
            return first - width + 1, np.zeros(0, dtype=np.uint64)
        terms = letters.astype(np.uint64) * _powers(self._sink, self.spec.inverse, count)
        sums = np.cumsum(terms, dtype=np.uint64) + self._tail[-1]
        combined = np.concatenate((self._tail, sums))
        raw = _powers(self._lift, self.spec.base, count) * (combined[width:] - combined[:count])
        self._tail = combined[-width:]
        self._lift = self._lift * pow(self.spec.base, count, 1 << 64) & MASK64
        self._sink = self._sink * pow(self.spec.inverse, count, 1 << 64) & MASK64
        self.seen += count
        skip = max(0, width - 1 - first)
        return first + skip - width + 1, self.spec.finish(raw[skip:])
