"""Common text is not secret: how many documents hold a gram, estimated while indexing.

A **count-min sketch** (`depth` rows of saturating 8-bit counters, conservative update) counts,
for each indexed gram, the documents *beyond the first* that hold it: a document's grams that
the membership filter already held (or that several documents of one batch share) add one each.
Only repeated grams enter the sketch, so it stays sparse even when it is much smaller than the
filters (`common_bits` bits per indexed gram, default 1). A gram that `common_docs` or more
documents hold (boilerplate, notices, legal formulas) is *common* and does not count as a hit:
it starts, extends and joins no chain. The estimate only errs upward (a collision can make a
rare gram look common, never the reverse).

**Public text** (`tokenclub guard public add FILE`: laws, the constitution) is kept as text under
`<home>/guard/public/` and hashed at every position into a small Bloom filter of each generation
(`public-*.bin`), rebuilt from all public files whenever one is added or the index is rebuilt
(each generation has its own seed). Its grams do not count either.

**Commonness is positional** (`clear_of_shared`, `Clearing`): a passage that N documents share
sits at a different alignment (offset mod stride) in each, and the index holds each alignment
only from the first document that stored it; the sketch counts every position of every later
document, so the alignment of the *first* document that held the passage reads N − 1 (exact,
indexed one at a time or in batches) while the others read fewer, and chains at those other
alignments ran on. So a held gram is *shared* (common or public) by its own estimate, and a
hit of a reply counts only if its gram (`width` letters) overlaps no letter of a shared gram
of the same reply: the shared alignment, held every `stride` letters through the passage,
covers it, and so does a gram that straddles it and a few words before it. A secret run of the
leak length that overlaps no shared gram still holds `hits` aligned grams that count.
(Summing the estimates of the `stride` positions of a window, one per alignment, would count
each document once per alignment it was first stored at: a passage in 4 documents of one batch
reads 4 at every position and would sum to 16.)
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from pathlib import Path
from typing import Any

import numpy as np

from tokenclub.guard.compiled import distinct_documents, sketch_estimate
from tokenclub.guard.hashing import U64, gram_hash, splitmix, splitmix_int
from tokenclub.guard.indexing.bloom import BlockedBloom, Geometry, best_hashes, blocks_for
from tokenclub.guard.normalize import normalize

DEPTH = 2
_SALTS = [splitmix_int(0xC0DE + row) for row in range(DEPTH)]
_SALTS64 = [np.uint64(salt) for salt in _SALTS]
_SALT_ARRAY = np.array(_SALTS, dtype=np.uint64)
PUBLIC_BITS = 10.0
PUBLIC_SHARD_BLOCKS = 1 << 24


class DocumentFrequency:
    """The sketch of one generation: `common.bin`, memory-mapped."""

    def __init__(self, path: Path, width: int, threshold: int, mode: str) -> None:
        self.width = width
        self.threshold = threshold
        self.counts = np.memmap(path, dtype=np.uint8, mode=mode, shape=(DEPTH, width))  # type: ignore[call-overload]
        self._rows = np.asarray(self.counts)
        self._width64 = np.uint64(width)  # no memmap cost per look-up

    @classmethod
    def create(cls, path: Path, width: int, threshold: int) -> DocumentFrequency:
        with path.open("wb") as fh:
            fh.truncate(DEPTH * width)
        return cls(path, width, threshold, "r+")

    @property
    def nbytes(self) -> int:
        return DEPTH * self.width

    def _cells(self, keys: U64) -> list[np.ndarray]:
        return [(splitmix(keys ^ salt) % self._width64).astype(np.intp) for salt in _SALTS64]

    def estimate(self, keys: U64) -> np.ndarray:
        """Documents beyond the first that hold each key (an upper bound)."""
        found: np.ndarray = sketch_estimate(self._rows, _SALT_ARRAY, keys)
        return found

    def add(self, keys: U64, amounts: np.ndarray) -> None:
        """Conservative update: each row is raised only to the new minimum."""
        if not len(keys):
            return
        cells = self._cells(keys)
        target = np.minimum(255, self.estimate(keys).astype(np.int64) + amounts).astype(np.uint8)
        for row in range(DEPTH):
            np.maximum.at(self.counts[row], cells[row], target)

    @property
    def compiled(self) -> tuple[np.ndarray, U64, int]:
        """The rows, salts and least estimate of a common gram, as `compiled.read_both_ways`
        takes them."""
        return self._rows, _SALT_ARRAY, max(0, self.threshold - 1)

    def common(self, keys: U64) -> np.ndarray:
        """Keys that `threshold` or more documents hold."""
        return self.estimate(keys) >= max(0, self.threshold - 1)

    def common_key(self, key: int) -> bool:
        """`common` for one key as a Python integer (a streamed hit)."""
        need = max(0, self.threshold - 1)
        for row, salt in enumerate(_SALTS):
            if self._rows[row, splitmix_int(key ^ salt) % self.width] < need:
                return False
        return True

    def flush(self) -> None:
        self.counts.flush()


def clear_of_shared(held: np.ndarray, shared: np.ndarray, width: int) -> np.ndarray:
    """Of a reply's consecutive positions, the held grams that count: held, not shared (common
    or public), and overlapping no shared gram (no shared position within `width` − 1)."""
    held, shared = np.asarray(held, dtype=np.bool_), np.asarray(shared, dtype=np.bool_)
    if not shared.any():
        return held
    near = np.zeros(len(shared) + width, dtype=np.int64)
    where = np.flatnonzero(shared)
    np.add.at(near, np.maximum(0, where - width + 1), 1)
    np.add.at(near, where + width, -1)
    clear: np.ndarray = held & (np.cumsum(near)[: len(shared)] == 0)
    return clear


class Clearing:
    """`clear_of_shared` for hits that come in order, a batch at a time (a streamed reply).

    `reach` is the first position that no shared gram seen so far overlaps. A hit of a batch
    counts if it is past `reach` and no shared gram of its own batch overlaps it; a shared gram
    can also overlap hits of earlier batches (up to `width` − 1 positions before it), which the
    caller withdraws (`batch` gives the last position that stays)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.reach = 0

    def batch(self, shared: list[int]) -> tuple[int | None, list[int]]:
        """(the last position before the batch's first shared gram that its grams do not
        overlap, or None when the batch has none; the batch's shared positions, sorted)."""
        if not shared:
            return None, shared
        shared = sorted(shared)
        return shared[0] - self.width, shared

    def counts(self, position: int, shared: list[int]) -> bool:
        """Whether a held, unshared hit at `position` counts (`shared`: its batch's, sorted)."""
        if position < self.reach:
            return False
        at = bisect_left(shared, position)
        if at < len(shared) and shared[at] - position < self.width:
            return False
        return not (at > 0 and position - shared[at - 1] < self.width)

    def close(self, shared: list[int]) -> None:
        """Once the batch's hits are placed."""
        if shared:
            self.reach = max(self.reach, shared[-1] + self.width)


def repeated(keys: U64, owner: np.ndarray, held_before: Any) -> tuple[U64, np.ndarray]:
    """The keys of one batch that repeat a document, and by how many documents each, sorted.

    `owner`: each key's document, not decreasing (the batch in document order).
    `held_before(unique_keys)` tells which keys the index held before the batch (in no order)."""
    if not len(keys):
        return keys, np.zeros(0, dtype=np.int64)
    unique, documents = distinct_documents(keys, np.asarray(owner, dtype=np.int64))
    extra = documents - (~np.asarray(held_before(unique), dtype=np.bool_)).astype(np.int64)
    chosen = extra > 0
    kept, kept_extra = unique[chosen], extra[chosen]
    order = np.argsort(kept)
    return kept[order], kept_extra[order]


def public_root(guard_root: Path) -> Path:
    return guard_root / "public"


def add_public_text(guard_root: Path, text: str) -> Path:
    """Keep one public text (named by its content hash, so adding it twice changes nothing)."""
    folder = public_root(guard_root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.txt"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path


def public_texts(guard_root: Path) -> list[str]:
    folder = public_root(guard_root)
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))] if folder.exists() else []


def public_keys(texts: list[str], width: int, seed: int) -> U64:
    """Every gram of the public texts (all positions: a quote may start anywhere)."""
    spec = gram_hash(width, seed)
    found = []
    for text in texts:
        letters = normalize(text).letters
        if len(letters) >= width:
            found.append(spec.at(letters, np.arange(len(letters) - width + 1, dtype=np.int64)))
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)


def build_public_filter(folder: Path, keys: U64) -> Geometry | None:
    """The public filter of a generation from its keys (None when there are none)."""
    for old in folder.glob("public-*.bin"):
        old.unlink()
    if not len(keys):
        return None
    geometry = Geometry(blocks_for(len(keys), PUBLIC_BITS), best_hashes(PUBLIC_BITS), PUBLIC_SHARD_BLOCKS)
    bloom = BlockedBloom.create(folder, "public", geometry)
    bloom.add(keys)
    bloom.flush()
    return geometry
