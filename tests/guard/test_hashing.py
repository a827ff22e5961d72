"""Gram keys: one definition, whether a text is hashed whole, at chosen starts or streamed."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenclub.guard.hashing import (
    MASK64,
    GramHash,
    ReversedRollingHasher,
    RollingHasher,
    splitmix,
    splitmix_int,
)


def _polynomial(letters: list[int], spec: GramHash) -> int:
    value = 0
    for letter in letters:
        value = (value * spec.base + letter) & MASK64
    return value


@settings(max_examples=50, deadline=None)
@given(
    letters=st.lists(st.integers(0, 0x10FFFF), min_size=0, max_size=60),
    width=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 60), max_size=8),
)
def test_streamed_keys_equal_the_keys_of_the_whole(letters: list[int], width: int, cuts: list[int]) -> None:
    spec = GramHash(width, seed=7)
    array = np.array(letters, dtype=np.uint32)
    starts = np.arange(max(0, len(letters) - width + 1), dtype=np.int64)
    whole = spec.at(array, starts)
    expected = [
        spec.finish(np.array([_polynomial(letters[i : i + width], spec)], dtype=np.uint64))[0] for i in starts
    ]
    assert whole.tolist() == [int(k) for k in expected]
    hasher = RollingHasher(spec)
    bounds = [0, *sorted(c for c in cuts if c <= len(letters)), len(letters)]
    streamed: list[int] = []
    for a, b in pairwise(bounds):
        first, keys = hasher.feed(array[a:b])
        assert first == len(streamed) or not len(keys)
        streamed += keys.tolist()
    assert streamed == whole.tolist()


@settings(max_examples=50, deadline=None)
@given(
    letters=st.lists(st.integers(0, 0x10FFFF), min_size=0, max_size=60),
    width=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 60), max_size=8),
)
def test_reversed_keys_are_the_keys_of_each_window_written_backwards(
    letters: list[int], width: int, cuts: list[int]
) -> None:
    spec = GramHash(width, seed=11)
    array = np.array(letters, dtype=np.uint32)
    windows = [letters[i : i + width][::-1] for i in range(max(0, len(letters) - width + 1))]
    expected = [spec.at(np.array(w, dtype=np.uint32), np.zeros(1, dtype=np.int64))[0] for w in windows]
    hasher = ReversedRollingHasher(spec)
    bounds = [0, *sorted(c for c in cuts if c <= len(letters)), len(letters)]
    streamed: list[int] = []
    for a, b in pairwise(bounds):
        first, keys = hasher.feed(array[a:b])
        assert first == len(streamed) or not len(keys)
        streamed += keys.tolist()
    assert streamed == [int(k) for k in expected]
    assert hasher.seen == len(letters)


def test_splitmix_int_is_splitmix() -> None:
    sample = np.random.default_rng(5).integers(0, 2**64, size=1_000, dtype=np.uint64)
    assert [splitmix_int(x) for x in sample.tolist()] == splitmix(sample).tolist()


def test_the_seed_keys_the_hash() -> None:
    letters = np.arange(40, dtype=np.uint32)
    starts = np.arange(10, dtype=np.int64)
    assert not set(GramHash(8, 1).at(letters, starts).tolist()) & set(
        GramHash(8, 2).at(letters, starts).tolist()
    )


def test_splitmix_is_a_bijection_on_a_sample() -> None:
    sample = np.arange(100_000, dtype=np.uint64)
    assert len(np.unique(splitmix(sample))) == len(sample)
