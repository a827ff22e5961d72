"""Dedup signatures: the pure, per-document half of exact and near-duplicate detection (issue 4).

Two signatures are computed from the same *dedup normalization* of a text (NFKC, case folding,
and every whitespace, punctuation, symbol and invisible character dropped), so that re-spaced,
re-punctuated or full-width copies of a document look the same:

* `dedup_key`: a 128-bit xxh3 hash of the normalized text, for exact duplicates.
* A MinHash signature over character 5-gram shingles of the normalized text, cut into LSH
  bands, for near duplicates. Character shingles rather than eojeol shingles: a Korean eojeol
  glues particles and endings to its stem (학교에, 학교를, 학교에서는), so one edited particle
  changes a whole word shingle, and spacing in Korean is often inconsistent (띄어쓰기) — after
  whitespace is dropped, eojeol shingles do not even exist. Five Hangul syllables span about
  one and a half eojeol (3.5 syllables each in the petitions), long enough that shingles shared
  by unrelated texts are rare, short enough that a changed word disturbs only the few shingles
  that overlap it.

Everything is deterministic across processes, machines and runs (no Python `hash()`, no
NumPy RNG stream, explicit little-endian bytes), because signatures are stored in a persistent
index and compared against documents hashed later, elsewhere. The key and the signatures do
depend on the Unicode database of the running Python (NFKC, case folding, categories); a
Python upgrade that changes it needs a re-index.

The LSH default is 16 bands × 8 rows over 128 permutations. A pair of documents with shingle
Jaccard similarity J becomes a candidate with probability 1 − (1 − J⁸)¹⁶:

    J      0.5    0.6    0.7    0.8    0.85   0.9    0.95
    P      0.061  0.237  0.613  0.947  0.994  1.000  1.000

Recall at the 0.8 threshold is what protects "counted once" (a missed duplicate is credited
twice), while a false candidate only costs one `jaccard_estimate` check, so the curve is set
to catch 95 % of pairs at J = 0.8 and over 99 % from J = 0.85, not centred on 0.8. That
check is part of the design: taken alone, a shared band also flags 61 % of pairs at J = 0.7.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import xxhash

from tokenclub.curate.step import Step, live_mask, set_column

SHINGLE_CHARS = 5
"""Characters per shingle."""

_DROPPED_CATEGORIES = frozenset(
    {
        *("Zs", "Zl", "Zp"),  # whitespace
        *("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),  # punctuation
        *("Sm", "Sc", "Sk", "So"),  # symbols
        *("Cc", "Cf", "Cs"),  # controls (tab, newline), invisible format characters, lone surrogates
    }
)

# Odd 64-bit constants: the polynomial base for shingles, and the Murmur3 finalizer multipliers.
_BASE = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)

# Shingles processed per step of the permutation loop: the (num_perm × chunk) uint64 block then
# stays in cache while NumPy's loops are long enough to run at full speed (measured best 8-16k).
_CHUNK = 8192

U32Array = npt.NDArray[np.uint32]
U64Array = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.intp]

_BAND_KEY = np.dtype([("band", ">u2"), ("hash", ">u8")])
"""A band key: the band's index and a 64-bit hash of its rows, big-endian, 10 bytes in all."""


_UNASSIGNED_PLANES = (0x40000, 0xE0000)
"""Planes 4-13 hold no character (Cn, kept): only the rest of the code space is looked up."""


@cache
def _kept() -> npt.NDArray[np.bool_]:
    """Lookup table over all code points: True where the character survives dedup normalization."""
    table = np.ones(sys.maxunicode + 1, dtype=np.bool_)
    for start, end in ((0, _UNASSIGNED_PLANES[0]), (_UNASSIGNED_PLANES[1], sys.maxunicode + 1)):
        table[start:end] = np.fromiter(
            (unicodedata.category(chr(cp)) not in _DROPPED_CATEGORIES for cp in range(start, end)),
            dtype=np.bool_,
            count=end - start,
        )
    return table


class _Normalized(NamedTuple):
    """Dedup-normalized texts as one array of code points, and each text's [start, end) in it."""

    points: U32Array
    offsets: IntArray

    def text(self, index: int) -> str:
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.points[start:end].astype("<u4").tobytes().decode("utf-32-le")


def _normalize(texts: Sequence[str]) -> _Normalized:
    """Normalize a batch: NFKC and case folding per text, then one vectorised filter for all of them.

    Filtering by a code point lookup table over the concatenated batch is several times faster
    than a regular expression and avoids per-text NumPy overhead on short texts.
    """
    folded = [unicodedata.normalize("NFKC", text).casefold() for text in texts]
    encoded = np.frombuffer("".join(folded).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    points: U32Array = encoded.astype(np.uint32, copy=False)
    keep = _kept()[points]
    ends = np.cumsum(np.fromiter(map(len, folded), dtype=np.intp, count=len(folded)))
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.intp)))
    return _Normalized(points[keep], kept_before[np.concatenate(([0], ends))])


def _key(normalized: str) -> str:
    return xxhash.xxh3_128_hexdigest(normalized.encode("utf-8"))


def normalize_for_dedup(text: str) -> str:
    """NFKC, case-folded, with whitespace, punctuation, symbols and invisible characters dropped.

    Letters, marks and digits (of any script) are all that is left, so "안녕하세요, 여러분!" and
    "안녕하세요 여러분" normalize alike, as do full-width and half-width forms.
    """
    return _normalize([text]).text(0)


def dedup_key(text: str) -> str:
    """Exact-duplicate key: the xxh3-128 hex digest of the UTF-8 of `normalize_for_dedup(text)`."""
    return _key(normalize_for_dedup(text))


def _mix64(values: U64Array) -> U64Array:
    """Murmur3's 64-bit finalizer, in place: a bijection that spreads every input bit over all bits."""
    values ^= values >> 33
    values *= _MIX1
    values ^= values >> 33
    values *= _MIX2
    values ^= values >> 33
    return values


def _shingle_hashes(batch: _Normalized) -> tuple[U64Array, IntArray]:
    """32-bit hashes (held as uint64) of every shingle of every text, and each text's first shingle.

    A shingle's five code points are combined as a polynomial modulo 2⁶⁴ and finalized with
    `_mix64`, all as array operations over the whole batch: a Python-level xxhash call per
    shingle would cost more than the whole MinHash. A text shorter than one shingle is padded
    with U+0000 (which normalization never leaves in) so that it still has exactly one shingle.
    """
    width = SHINGLE_CHARS
    lengths = np.diff(batch.offsets)
    short = np.flatnonzero(lengths < width)
    points = np.insert(batch.points, np.repeat(batch.offsets[short + 1], width - lengths[short]), 0)
    lengths = np.maximum(lengths, width)
    wide = points.astype(np.uint64)
    windows = wide.size - width + 1
    hashes = wide[:windows].copy()
    for offset in range(1, width):
        hashes *= _BASE
        hashes += wide[offset : offset + windows]
    _mix64(hashes)
    hashes >>= 32
    # Windows starting in the last width-1 characters of a text run into the next one.
    inside = np.ones(wide.size, dtype=np.bool_)
    inside[(np.cumsum(lengths)[:, None] - np.arange(1, width)).ravel()] = False
    counts = lengths - width + 1
    first = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.intp)
    return hashes[inside[:windows]], first


NEAR_DUPLICATE_JACCARD = 0.8
"""Estimated Jaccard similarity at or above which an LSH candidate counts as a near-duplicate."""


def signature_from_bytes(data: bytes) -> U32Array:
    """A signature stored by `DedupSignatureStep` (the `minhash` column) back as an array."""
    return np.frombuffer(data, dtype=np.uint32)


def jaccard_estimate(a: U32Array, b: U32Array) -> float:
    """Estimated Jaccard similarity of two documents: the share of equal signature positions."""
    if a.shape != b.shape:
        raise ValueError(f"signatures differ in shape: {a.shape} and {b.shape}")
    return float(np.count_nonzero(a == b)) / a.size


class MinHasher:
    """MinHash signatures over character shingles, and their LSH band keys.

    Permutation i maps a 32-bit shingle hash x to ((aᵢ·x + bᵢ) mod 2⁶⁴) >> 32, the
    multiply-add-shift family, which is strongly universal for 32-bit keys. The minimum is taken
    before the shift (the shift is monotone), so each permutation costs one multiply, one add
    and one min per shingle, done for all permutations and a whole batch of documents at once.
    aᵢ, bᵢ are derived from `seed` by `_mix64`, never from a random generator whose stream may
    change between NumPy versions.
    """

    def __init__(self, num_perm: int = 128, bands: int = 16, rows: int = 8, seed: int = 0) -> None:
        if num_perm < 1 or bands < 1 or rows < 1:
            raise ValueError("num_perm, bands and rows must be positive")
        if bands * rows > num_perm:
            raise ValueError(f"{bands} bands × {rows} rows need more than {num_perm} permutations")
        if bands >= 1 << 16:
            raise ValueError("at most 65535 bands (the band index is two bytes of the key)")
        if not 0 <= seed < 1 << 64:
            raise ValueError("seed must fit in 64 unsigned bits")
        self.num_perm = num_perm
        self.bands = bands
        self.rows = rows
        self.seed = seed
        counter = np.arange(1, 2 * num_perm + 1, dtype=np.uint64) * _BASE + np.uint64(seed)
        params = _mix64(counter)
        self._a = params[:num_perm].reshape(-1, 1).copy()
        self._b = params[num_perm:].reshape(-1, 1).copy()

    def signature(self, text: str) -> U32Array:
        """The MinHash signature of one text: `num_perm` uint32 values."""
        row: U32Array = self.signatures([text])[0]
        return row

    def signatures(self, texts: Sequence[str]) -> U32Array:
        """Signatures of many texts at once, one row per text (much faster than one by one)."""
        return self._signatures(_normalize(texts))

    def _signatures(self, batch: _Normalized) -> U32Array:
        docs = batch.offsets.size - 1
        if docs == 0:
            return np.empty((0, self.num_perm), dtype=np.uint32)
        hashes, offsets = _shingle_hashes(batch)
        mins = np.full((self.num_perm, docs), np.iinfo(np.uint64).max, dtype=np.uint64)
        block = np.empty((self.num_perm, min(_CHUNK, hashes.size)), dtype=np.uint64)
        for lo in range(0, hashes.size, _CHUNK):
            hi = min(lo + _CHUNK, hashes.size)
            first = int(np.searchsorted(offsets, lo, side="right")) - 1
            last = int(np.searchsorted(offsets, hi, side="left"))
            cuts = offsets[first:last] - lo
            cuts[0] = 0
            values = block[:, : hi - lo]
            np.multiply(self._a, hashes[None, lo:hi], out=values)
            values += self._b
            part = np.minimum.reduceat(values, cuts, axis=1)
            np.minimum(mins[:, first:last], part, out=mins[:, first:last])
        return np.ascontiguousarray((mins >> 32).astype(np.uint32).T)

    def band_keys(self, signature: U32Array) -> list[bytes]:
        """LSH bucket keys: per band, its index (2 bytes) and a 64-bit hash of its rows (8 bytes).

        Two documents are near-duplicate candidates when they share any key. Rows beyond
        bands × rows (if num_perm is larger) only serve `jaccard_estimate`.
        """
        if signature.shape != (self.num_perm,):
            raise ValueError(f"expected a signature of {self.num_perm} values, got shape {signature.shape}")
        data = self._band_keys(signature[None, :]).tobytes()
        size = _BAND_KEY.itemsize
        return [data[i : i + size] for i in range(0, len(data), size)]

    def _band_keys(self, signatures: U32Array) -> npt.NDArray[np.void]:
        """Band keys of many signatures as (documents × bands) records: one pass for a whole batch.

        A band's rows are hashed like shingles (polynomial modulo 2⁶⁴, then `_mix64`): for
        signatures of unrelated documents, whose values are independent and uniform, two bands
        collide with probability 2⁻⁶⁴, which only ever adds a candidate that is then checked.
        """
        table = signatures[:, : self.bands * self.rows].reshape(-1, self.bands, self.rows).astype(np.uint64)
        hashes = table[:, :, 0].copy()
        for row in range(1, self.rows):
            hashes *= _BASE
            hashes += table[:, :, row]
        records = np.empty(hashes.shape, dtype=_BAND_KEY)
        records["band"] = np.arange(self.bands)
        records["hash"] = _mix64(hashes)
        return records

    def candidate_probability(self, jaccard: float) -> float:
        """Chance that two documents with this Jaccard similarity share a band key (the S-curve)."""
        return float(1.0 - (1.0 - jaccard**self.rows) ** self.bands)


def band_key_integers(bands: pa.Array) -> npt.NDArray[np.int64]:
    """Band keys (a flattened `minhash_bands` column) as signed 64-bit integers, for an index.

    The band index and the band's hash are mixed into 64 bits: an index keyed by one integer
    column is several times smaller and faster to probe than one keyed by 10-byte strings. Two
    different band keys meet in one integer with probability 2⁻⁶⁴, which like a hash collision
    within a band only adds a candidate that the Jaccard check then rejects.
    """
    flat = bands.combine_chunks() if isinstance(bands, pa.ChunkedArray) else bands
    if len(flat) == 0:
        return np.empty(0, dtype=np.int64)
    if not pa.types.is_binary(flat.type) or flat.null_count:
        raise ValueError(f"band keys must be non-null binary values, got {flat.type}")
    offsets = np.frombuffer(flat.buffers()[1], dtype=np.int32, count=len(flat) + 1, offset=4 * flat.offset)
    if np.any(np.diff(offsets) != _BAND_KEY.itemsize):
        raise ValueError(f"band keys must be {_BAND_KEY.itemsize} bytes each")
    data = flat.buffers()[2]
    records = np.frombuffer(data, dtype=_BAND_KEY, count=len(flat), offset=int(offsets[0]))
    mixed = records["hash"].astype(np.uint64) + records["band"].astype(np.uint64) * _BASE
    return _mix64(mixed).view(np.int64)


class DedupSignatureStep(Step):
    """Writes `dedup_key` (string), `minhash` (the signature's bytes, for checking LSH candidates)
    and `minhash_bands` (list of binary) for every live document.

    Rejected documents get nulls. The lookup against the persistent index (and the clustering of
    candidates) is a separate, shuffling workflow; this step is a pure map over a batch.
    """

    name = "dedup_signature"
    writes = ("dedup_key", "minhash", "minhash_bands")

    def __init__(self, hasher: MinHasher | None = None) -> None:
        self.hasher = hasher if hasher is not None else MinHasher()

    def process(self, batch: pa.Table) -> pa.Table:
        live = np.array(live_mask(batch), dtype=np.bool_)
        texts = batch.column("text").to_pylist()
        rows = np.flatnonzero(live)
        normalized = _normalize([texts[row] for row in rows])
        keys: list[str | None] = [None] * batch.num_rows
        for index, row in enumerate(rows):
            keys[row] = _key(normalized.text(index))
        signatures = self.hasher._signatures(normalized)
        minhash: list[bytes | None] = [None] * batch.num_rows
        for index, row in enumerate(rows):
            minhash[row] = signatures[index].tobytes()
        records = self.hasher._band_keys(signatures)
        # Arrow arrays straight from the records' bytes: no Python object per band key.
        size = _BAND_KEY.itemsize
        values = pa.Array.from_buffers(
            pa.binary(),
            records.size,
            [
                None,
                pa.py_buffer(np.arange(0, (records.size + 1) * size, size, dtype=np.int32)),
                pa.py_buffer(records),
            ],
        )
        offsets = np.concatenate(([0], np.cumsum(live * self.hasher.bands))).astype(np.int32)
        bands = pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~live))
        batch = set_column(batch, "dedup_key", keys, pa.string())
        batch = set_column(batch, "minhash", minhash, pa.binary())
        return set_column(batch, "minhash_bands", bands, pa.list_(pa.binary()))
