"""A blocked Bloom filter in memory-mapped files: k bits in one 512-bit block per key.

One key touches one 64-byte block (a cache line, and at most one page of a file on disk), so a
lookup costs one random read however large the filter is; at 8 bits per key the false-positive
rate is 2.3 % against 2.2 % for a classic Bloom filter of the same size. The high 32 bits of a
key pick the block, the low 32 bits times k odd salts pick the bits inside it.

Blocks are split into shard files of at most `blocks_per_shard` blocks, so a shard is a range
of the hash space: shards can live on different disks or hosts, and filters of the same
geometry built on different machines merge by OR-ing their shards. Bits only ever go from 0 to
1, so readers need no lock while a writer adds (a reader may miss keys being added that instant).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from tokenclub.guard.compiled import bloom_add, bloom_contains
from tokenclub.guard.hashing import U64, splitmix_int, word

BLOCK_BITS = 512
BLOCK_WORDS = BLOCK_BITS // 64
_S6, _S23, _S32 = word(6), word(23), word(32)  # 0-d arrays: see `word`
_LOW6, _LOW32 = word(63), word(0xFFFFFFFF)
MAX_BLOCKS = 1 << 32

Bools = npt.NDArray[np.bool_]


def false_positive_rate(bits_per_key: float, hashes: int) -> float:
    """Expected false-positive rate of the blocked filter at `bits_per_key` (Putze et al. 2007).

    The number of keys in a block is Poisson with mean 512 / bits_per_key; a lookup is a false
    positive when all k of its bits are among those that block's keys set.
    """
    mean = BLOCK_BITS / bits_per_key
    total = 0.0
    for keys in range(int(mean * 4 + 40)):
        weight = math.exp(keys * math.log(mean) - mean - math.lgamma(keys + 1))
        total += weight * (1 - (1 - 1 / BLOCK_BITS) ** (hashes * keys)) ** hashes
    return total


@cache
def best_hashes(bits_per_key: float) -> int:
    """The number of bits per key that minimises the false-positive rate."""
    return min(range(1, 17), key=lambda k: false_positive_rate(bits_per_key, k))


def blocks_for(capacity: int, bits_per_key: float) -> int:
    return min(MAX_BLOCKS, max(1, math.ceil(capacity * bits_per_key / BLOCK_BITS)))


@cache
def _salts(hashes: int) -> U64:
    return np.array([(splitmix_int(i + 1) & 0xFFFFFFFF) | 1 for i in range(hashes)], dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class Geometry:
    """What two filters must share to be merged or queried alike."""

    blocks: int
    hashes: int
    blocks_per_shard: int

    @property
    def shards(self) -> int:
        return -(-self.blocks // self.blocks_per_shard)

    def shard_blocks(self, shard: int) -> int:
        return min(self.blocks_per_shard, self.blocks - shard * self.blocks_per_shard)

    def as_dict(self) -> dict[str, int]:
        return {"blocks": self.blocks, "hashes": self.hashes, "blocks_per_shard": self.blocks_per_shard}


class BlockedBloom:
    """The filter over the shard files `<prefix>-<shard>.bin` in `folder`."""

    def __init__(self, folder: Path, prefix: str, geometry: Geometry, mode: Literal["r", "r+"]) -> None:
        self.geometry = geometry
        self.paths = [folder / f"{prefix}-{i:04d}.bin" for i in range(geometry.shards)]
        self._shards = [
            np.memmap(path, dtype=np.uint64, mode=mode, shape=(geometry.shard_blocks(i) * BLOCK_WORDS,))
            for i, path in enumerate(self.paths)
        ]
        self._salts = _salts(geometry.hashes)
        self._blocks = np.uint64(geometry.blocks)
        self._salt_ints: list[int] = self._salts.tolist()
        self._words = [shard.data.cast("B").cast("Q") for shard in self._shards]
        self._plain = [np.asarray(shard) for shard in self._shards]  # no memmap cost per look-up

    @classmethod
    def create(cls, folder: Path, prefix: str, geometry: Geometry) -> BlockedBloom:
        """Empty shard files (sparse on most file systems until bits are set)."""
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(geometry.shards):
            with (folder / f"{prefix}-{i:04d}.bin").open("wb") as fh:
                fh.truncate(geometry.shard_blocks(i) * BLOCK_BITS // 8)
        return cls(folder, prefix, geometry, "r+")

    @property
    def nbytes(self) -> int:
        return self.geometry.blocks * BLOCK_BITS // 8

    def _locate(self, keys: U64) -> tuple[U64, U64, U64]:
        """Block, word inside the block and bit inside the word of every key's k bits."""
        block = ((keys >> _S32) * word(self.geometry.blocks)) >> _S32
        low = (keys & _LOW32)[:, None]
        position = ((low * self._salts[None, :]) & _LOW32) >> _S23
        return block, position >> _S6, position & _LOW6

    def _by_shard(self, block: U64) -> Iterator[tuple[int, npt.NDArray[np.intp], U64]]:
        """(shard, indexes of the keys in it, their block inside the shard)."""
        per = np.uint64(self.geometry.blocks_per_shard)
        if len(self._shards) == 1:
            yield 0, np.arange(len(block)), block
            return
        shard = block // per
        for number in np.unique(shard).tolist():
            chosen = np.flatnonzero(shard == number)
            yield int(number), chosen, block[chosen] - np.uint64(number) * per

    def add(self, keys: U64) -> None:
        if not len(keys):
            return
        if len(self._plain) == 1:  # the usual case: one compiled pass
            self._add_one(keys)
            return
        block, word, bit = self._locate(keys)
        for shard, chosen, local in self._by_shard(block):
            index = (local[:, None] * np.uint64(BLOCK_WORDS) + word[chosen]).astype(np.intp)
            np.bitwise_or.at(self._shards[shard], index.ravel(), (np.uint64(1) << bit[chosen]).ravel())

    def _add_one(self, keys: U64) -> None:
        """`add` on one shard, in one compiled pass: a word read and written per bit set."""
        bloom_add(self._plain[0], self._blocks, self._salts, keys)

    def contains(self, keys: U64) -> Bools:
        if len(self._plain) == 1:  # the usual case, without the per-shard bookkeeping
            return self._contains_one(keys)
        found = np.zeros(len(keys), dtype=np.bool_)
        if not len(keys):
            return found
        block, word, bit = self._locate(keys)
        for shard, chosen, local in self._by_shard(block):
            index = (local[:, None] * np.uint64(BLOCK_WORDS) + word[chosen]).astype(np.intp)
            words = self._plain[shard][index]
            found[chosen] = ((words >> bit[chosen]) & np.uint64(1)).all(axis=1)
        return found

    @property
    def compiled(self) -> tuple[U64, np.uint64, U64] | None:
        """The filter as `compiled.bloom_contains` reads it (words, blocks, salts): one shard only."""
        return (self._plain[0], self._blocks, self._salts) if len(self._plain) == 1 else None

    def _contains_one(self, keys: U64) -> Bools:
        """`contains` on one shard, in one compiled pass (a streamed batch's few keys and a
        batch's every position alike)."""
        found: Bools = bloom_contains(self._plain[0], self._blocks, self._salts, keys)
        return found

    def contains_keys(self, keys: list[int]) -> list[bool]:
        """`contains` for keys as Python integers: a streamed token has only a few keys, and
        NumPy's fixed cost per call is many times the few word reads they need."""
        blocks, per_shard, salts, shards = (
            self.geometry.blocks,
            self.geometry.blocks_per_shard,
            self._salt_ints,
            self._words,
        )
        found: list[bool] = []
        for key in keys:
            shard, local = divmod(((key >> 32) * blocks) >> 32, per_shard)
            words, first, low = shards[shard], local * BLOCK_WORDS, key & 0xFFFFFFFF
            for salt in salts:
                position = ((low * salt) & 0xFFFFFFFF) >> 23
                if not (words[first + (position >> 6)] >> (position & 63)) & 1:
                    found.append(False)
                    break
            else:
                found.append(True)
        return found

    def fill(self) -> float:
        """Share of bits set: the measured load, from which the real false-positive rate follows."""
        ones = sum(int(np.bitwise_count(shard).sum()) for shard in self._shards)
        return ones / (self.geometry.blocks * BLOCK_BITS)

    def flush(self) -> None:
        for shard in self._shards:
            shard.flush()
