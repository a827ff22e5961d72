"""The blocked Bloom filter: no false negatives, the false-positive rate it promises, shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenclub.guard.indexing.bloom import (
    BlockedBloom,
    Geometry,
    best_hashes,
    blocks_for,
    false_positive_rate,
)


def _keys(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=count, dtype=np.uint64)


@pytest.mark.parametrize(("bits", "shard_blocks"), [(8.0, 1 << 24), (4.0, 1 << 24), (8.0, 97)])
def test_measured_false_positive_rate_matches_the_formula(
    tmp_path: Path, bits: float, shard_blocks: int
) -> None:
    capacity = 50_000
    geometry = Geometry(blocks_for(capacity, bits), best_hashes(bits), shard_blocks)
    bloom = BlockedBloom.create(tmp_path, "f", geometry)
    stored = _keys(capacity, 1)
    bloom.add(stored)
    assert bloom.contains(stored).all()
    measured = bloom.contains(_keys(400_000, 2)).mean()
    expected = false_positive_rate(bits, geometry.hashes)
    assert expected * 0.8 < measured < expected * 1.2
    assert geometry.shards == -(-geometry.blocks // shard_blocks)


def test_bits_survive_reopening_read_only(tmp_path: Path) -> None:
    geometry = Geometry(blocks=64, hashes=5, blocks_per_shard=16)
    writer = BlockedBloom.create(tmp_path, "m", geometry)
    stored = _keys(500, 3)
    writer.add(stored)
    writer.flush()
    reader = BlockedBloom(tmp_path, "m", geometry, "r")
    assert reader.contains(stored).all()
    assert reader.fill() == writer.fill() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m-{i:04d}.bin" for i in range(4)]


@pytest.mark.parametrize("shard_blocks", [1 << 24, 7])
def test_the_integer_lookup_agrees_with_the_vectorised_one(tmp_path: Path, shard_blocks: int) -> None:
    geometry = Geometry(blocks_for(2_000, 8.0), best_hashes(8.0), shard_blocks)
    bloom = BlockedBloom.create(tmp_path, "f", geometry)
    stored = _keys(2_000, 4)
    bloom.add(stored)
    probe = np.concatenate((stored[:500], _keys(20_000, 5)))
    vectorised = bloom.contains(probe)
    assert bloom.contains_keys(probe.tolist()) == vectorised.tolist()
    assert vectorised[:500].all() and 0 < vectorised[500:].sum() < 2_000


def test_design_rates() -> None:
    assert best_hashes(8.0) == 5
    assert false_positive_rate(8.0, 5) == pytest.approx(0.0231, abs=5e-4)
    assert false_positive_rate(4.0, best_hashes(4.0)) == pytest.approx(0.148, abs=2e-3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blocks=st.integers(1, 300),
    count=st.integers(1, 3_000),
    repeats=st.integers(0, 500),
    seed=st.integers(0, 2**32 - 1),
)
def test_one_shard_add_sets_the_bits_of_the_sharded_add(
    tmp_path_factory: pytest.TempPathFactory,
    blocks: int,
    count: int,
    repeats: int,
    seed: int,
) -> None:
    """One shard's add and look-up (compiled) set and read the bits that the general per-shard
    add and look-up (NumPy) do, duplicate keys included."""
    folder = tmp_path_factory.mktemp("bloom")
    keys = _keys(count, seed)
    keys = np.concatenate((keys, keys[np.random.default_rng(seed).integers(0, count, repeats)]))
    one = BlockedBloom.create(folder, "one", Geometry(blocks, 5, 1 << 24))
    sharded = BlockedBloom.create(folder, "sharded", Geometry(blocks, 5, 7))
    one.add(keys[:0])
    assert not np.asarray(one._shards[0]).any()
    one.add(keys)
    sharded.add(keys)
    assert np.array_equal(
        np.asarray(one._shards[0]), np.concatenate([np.asarray(s) for s in sharded._shards])
    )
    assert one.contains(keys).all()
    probe = np.concatenate((keys, _keys(2_000, seed + 1)))  # compiled against NumPy
    assert np.array_equal(one.contains(probe), sharded.contains(probe))
