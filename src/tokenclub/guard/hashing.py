"""Keyed hashes of fixed-width letter n-grams, the same whether a stream is hashed whole or in pieces.

A gram starting at position i has the polynomial hash ``G(i) = Σ_j c[i+j]·B^(w-1-j) mod 2^64``
with a base B drawn from the index's secret seed. Written with the prefix sums
``A(n) = Σ_{j<n} c[j]·B^-j`` (B is odd, so invertible modulo 2^64) it becomes
``G(i) = B^(i+w-1)·(A(i+w) - A(i))``: one cumulative sum and one cumulative product give every
gram of a text in a few vectorised operations. A gram's hash depends on its own letters only, so
a stream only needs its last w letters to continue: it rolls the hash one letter at a time,
``G ← G·B + c_new − c_old·B^w``, which is the same polynomial modulo 2^64.
The polynomial hash is then finalised with SplitMix64 so that Bloom positions are uniform. The
seed keys the index: without it, its bits cannot be queried for a guessed text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from tokenclub.guard.compiled import Ring, read_both_ways, rolled_keys
from tokenclub.guard.normalize import LETTERS, code_points

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

MASK64 = (1 << 64) - 1


def word(value: int) -> U64:
    """A 64-bit constant as a 0-d array: an operation with it costs a quarter of one with a
    NumPy scalar (converted on every call), which counts on a streamed batch's small arrays."""
    return np.array(value, dtype=np.uint64)


_MIX1 = word(0xBF58476D1CE4E5B9)
_MIX2 = word(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15
_S27, _S30, _S31 = word(27), word(30), word(31)


def splitmix(x: U64) -> U64:
    """SplitMix64's finaliser over an array: a bijection that spreads every input bit."""
    z: U64 = x ^ (x >> _S30)
    z *= _MIX1
    z ^= z >> _S27
    z *= _MIX2
    z ^= z >> _S31
    return z


def splitmix_int(x: int) -> int:
    """`splitmix` for one Python integer (seeds, salts, the keys of a small streamed chunk)."""
    z = x & MASK64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK64
    return z ^ (z >> 31)


def _powers(first: int, base: int, count: int) -> U64:
    """first, first·base, first·base², … modulo 2^64 (`count` of them)."""
    steps = np.full(count, base, dtype=np.uint64)
    if count:
        steps[0] = first
    return np.multiply.accumulate(steps, dtype=np.uint64)


_POWERS_KEPT = 4096  # letters: a streamed batch or a short reply reuses the powers computed once


@lru_cache(maxsize=16)
def _kept_powers(base: int, inverse: int) -> tuple[U64, U64]:
    return _powers(1, inverse, _POWERS_KEPT), _powers(1, base, _POWERS_KEPT)


def _cached_powers(base: int, inverse: int, count: int) -> tuple[U64, U64]:
    """(inverse⁰…, base⁰…), at least `count` of each: computed once for texts up to
    `_POWERS_KEPT` letters, since a stream hashes many small pieces."""
    if count <= _POWERS_KEPT:
        return _kept_powers(base, inverse)
    return _powers(1, inverse, count), _powers(1, base, count)


@lru_cache(maxsize=16)
def gram_hash(width: int, seed: int) -> GramHash:
    """`GramHash(width, seed)`, made once: its modular powers cost more than a short reply's scan."""
    return GramHash(width, seed)


@dataclass(frozen=True, slots=True)
class GramHash:
    """The keyed hash of width-`width` grams; everything derives from `seed`."""

    width: int
    seed: int
    base: int = field(init=False)
    inverse: int = field(init=False)
    key: int = field(init=False)
    drop: int = field(init=False, repr=False, compare=False)  # B^w: the weight a letter leaves with
    top: int = field(init=False, repr=False, compare=False)  # B^(w−1): a reversed gram's new letter
    _key64: U64 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError("gram width must be at least 1")
        base = splitmix_int(self.seed ^ _GOLDEN) | 1
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "inverse", pow(base, -1, 1 << 64))
        object.__setattr__(self, "drop", pow(base, self.width, 1 << 64))
        object.__setattr__(self, "top", pow(base, self.width - 1, 1 << 64))
        object.__setattr__(self, "key", splitmix_int(self.seed + 2 * _GOLDEN))
        object.__setattr__(self, "_key64", word(self.key))

    def finish(self, raw: U64) -> U64:
        return splitmix(raw ^ self._key64)

    def raw_at(self, letters: U32, starts: I64) -> U64:
        """Polynomial hashes (not finalised) of the grams of one text that start at `starts`."""
        count = len(letters)
        inverses, lift = _cached_powers(self.base, self.inverse, count)
        prefix = np.zeros(count + 1, dtype=np.uint64)
        np.cumsum(letters.astype(np.uint64) * inverses[:count], out=prefix[1:])
        ends = starts + self.width
        raw: U64 = lift[ends - 1] * (prefix[ends] - prefix[starts])
        return raw

    def at(self, letters: U32, starts: I64) -> U64:
        """Keys of the grams of one text that start at `starts` (each must fit in the text)."""
        return self.finish(self.raw_at(letters, starts))


class RollingHasher:
    """Keys of every gram of a stream, fed in pieces; the keys do not depend on the pieces.

    It carries the last `width` letters (zeros before the stream starts) and the polynomial
    hash of that window, rolled a letter at a time in compiled code (`compiled.rolled_keys`):
    a streamed batch costs one call, not NumPy's fixed cost per operation.
    """

    backward = False

    def __init__(self, spec: GramHash) -> None:
        self.spec = spec
        self.seen = 0
        window = np.zeros(spec.width, dtype=np.uint64)  # a ring of the last `width` letters
        state = np.zeros(2, dtype=np.uint64)  # the window's polynomial, where its oldest letter is
        multiply, weight = (spec.inverse, spec.top) if self.backward else (spec.base, spec.drop)
        self._ring: Ring = (
            window,
            state,
            np.uint64(multiply),
            np.uint64(weight),
            np.uint64(spec.key),
            self.backward,
        )

    def _first(self, count: int) -> tuple[int, int]:
        """(start of the first new complete gram, new grams to skip as not complete)."""
        first = self.seen - self.spec.width + 1
        skip = max(0, -first)
        self.seen += count
        return first + skip, skip

    def feed(self, letters: U32) -> tuple[int, U64]:
        """(start of the first new gram, keys of the grams that the new letters complete)."""
        keys: U64 = rolled_keys(self._ring, letters)
        first, skip = self._first(len(letters))
        return first, keys[skip:]


class ReversedRollingHasher(RollingHasher):
    """Keys of every gram of a stream read backwards: the gram at i gets the key of
    ``letters[i : i + w][::-1]``, so text written in reverse hits the grams the index stored.

    Its polynomial is ``R(i) = Σ_j c[i+j]·B^j``, rolled as ``R ← (R − c_old)·B⁻¹ + c_new·B^(w−1)``.
    """

    backward = True


_NO_FILTER = (np.zeros(0, dtype=np.uint64), np.uint64(0), np.zeros(0, dtype=np.uint64))
NO_SKETCH = (np.zeros((0, 1), dtype=np.uint8), np.zeros(0, dtype=np.uint64), 0)
"""A sketch with no rows: no held gram is common."""


def read_pair(
    text: str,
    offset: int,
    ahead: RollingHasher,
    behind: ReversedRollingHasher,
    members: tuple[U64, np.uint64, U64] | None = None,
    sketch: tuple[npt.NDArray[np.uint8], U64, int] | None = None,
) -> tuple[U32, I64, U64, int, I64 | None, npt.NDArray[np.bool_] | None]:
    """A text's letters and owners (`normalize_both`), the keys it completes for both hashers
    (the forward keys, then the backward ones from the returned split) and, given a filter
    (`BlockedBloom.compiled`), where among them the filter holds one and, given the
    commonness sketch too (`DocumentFrequency.compiled`), which of those are common: one
    compiled call."""
    points = code_points(text)
    skip = max(0, ahead.spec.width - 1 - ahead.seen)
    while True:
        letters, owners, keys, positions, common, complete = read_both_ways(
            points,
            LETTERS.lengths,
            LETTERS.starts,
            LETTERS.flat,
            offset,
            ahead._ring,
            behind._ring,
            skip,
            members or _NO_FILTER,
            sketch or NO_SKETCH,
        )
        if complete:
            break
        LETTERS.fill(points)
    ahead._first(len(letters))
    behind._first(len(letters))
    if members is None:
        return letters, owners, keys, len(keys) // 2, None, None
    return letters, owners, keys, len(keys) // 2, positions, common if sketch is not None else None
