"""The index: sized by the leak length, persistent, growing, rebuilt without withdrawn partners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.guard.conftest import partner_of
from tests.guard.corpus import petitions
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing.index import (
    GuardIndex,
    IndexParams,
    LiveIndex,
    document_keys,
    logged_parts,
    open_index,
    rebuild,
    writer,
)

DOCS = petitions()[:60]
PARAMS = IndexParams.for_leak_length(50, seed=11)


def test_params_follow_the_leak_length() -> None:
    assert (PARAMS.width, PARAMS.stride, PARAMS.hits, PARAMS.guaranteed_length()) == (26, 5, 5, 50)
    assert PARAMS.guaranteed_length(strict=True) == 45
    long = IndexParams.for_leak_length(128, seed=1)
    assert (long.stride, long.guaranteed_length()) == (20, 125)
    assert long.bytes_per_letter() == pytest.approx(12 / 8 / 20)
    with pytest.raises(ValueError, match="width below"):
        IndexParams.for_leak_length(28)
    assert PARAMS.expected_false_alarms(4_640) < 1e-4


def test_every_stride_gram_of_every_document_is_found(guard_index: GuardIndex) -> None:
    keys, owner = document_keys(guard_index.params, petitions())
    assert guard_index.holds(keys).all()
    # grams that many petitions share (stock phrases, the board's notices) do not count
    counted = guard_index.contains(keys)
    assert guard_index.sketch is not None
    assert (counted == ~guard_index.sketch.common(keys)).all()
    assert 0 < (~counted).sum() < len(keys) // 10
    assert len(keys) == sum(s.elements for s in guard_index.segments)
    assert guard_index.attribute(keys[owner == 4]) == (partner_of(4),)


def test_attribution_names_each_owner_among_many_partners(tmp_path: Path) -> None:
    with writer(tmp_path / "guard", PARAMS, capacity=100_000) as index:
        index.add(DOCS, [100 + i % 40 for i in range(len(DOCS))])  # 40 partners
        index.add(DOCS[:3], [500] * 3)  # a reseller holds the first three again
    keys, owner = document_keys(PARAMS, DOCS)
    for doc in range(len(DOCS)):
        mine = keys[owner == doc]
        expected = (100 + doc % 40, 500) if doc < 3 else (100 + doc % 40,)
        assert index.attribute(mine) == expected
        # the integer path (a few salted keys) agrees with the vectorised one (82 keys here)
        assert index.attribute(mine[:2]) == index._attribute_small(sorted(index.partners), mine[:2].tolist())
        assert set(expected) <= set(index.attribute(mine[:1]))  # one gram: the integer path
    assert index.attribute(keys[:0]) == ()


def test_index_persists_and_reloads(tmp_path: Path) -> None:
    root = tmp_path / "guard"
    with writer(root, PARAMS, capacity=100_000) as index:
        index.add(DOCS, [7] * len(DOCS), [100] * len(DOCS))
    reopened = open_index(root)
    assert reopened is not None and reopened.mode == "r"
    assert reopened.params == PARAMS
    assert (reopened.partners, reopened.tokens) == ([7], 6_000)
    keys, _ = document_keys(PARAMS, DOCS)
    assert reopened.holds(keys).all()
    assert reopened.stats()["bytes_per_token"] == round(reopened.nbytes / 6_000, 4)


def test_segments_grow_and_readers_follow(tmp_path: Path) -> None:
    root = tmp_path / "guard"
    live = LiveIndex(root, check_every_s=0)
    assert live.current() is None
    with writer(root, PARAMS, capacity=2_000) as index:
        index.add(DOCS[:20], [1] * 20)
    first = live.current()
    assert first is not None and len(first.segments) == 1
    with writer(root) as index:
        index.add(DOCS[20:], [2] * 40)
    grown = live.current()
    assert grown is not None and grown is not first
    assert [s.capacity for s in grown.segments][:2] == [2_000, max(4_000, grown.segments[1].elements)]
    keys, _ = document_keys(PARAMS, DOCS)
    assert grown.holds(keys).all()
    probe = np.concatenate((keys, np.random.default_rng(1).integers(0, 2**64, size=5_000, dtype=np.uint64)))
    assert grown.contains_keys(probe.tolist()) == grown.contains(probe).tolist()


def test_rebuild_drops_a_withdrawn_partner_and_keeps_it_out(tmp_path: Path) -> None:
    root = tmp_path / "guard"
    partners = [1 if i < 30 else 2 for i in range(len(DOCS))]
    with writer(root, PARAMS) as index:
        index.add(DOCS, partners)
    live = LiveIndex(root, check_every_s=0)
    before = LeakScanner(live)
    assert before.scan(DOCS[0]).partner_ids == (1,)
    old = live.current()
    assert old is not None

    rebuilt = rebuild(root, [(DOCS, partners, [])], PARAMS, capacity=50_000, parts=["u/0"], withdrawn=[1])
    assert not old.folder.exists()
    assert logged_parts(rebuilt) == {"u/0"}
    after = LeakScanner(live)
    assert after.scan(DOCS[0]).verdict == "pass"
    assert after.scan(DOCS[40]).partner_ids == (2,)
    with writer(root) as index:
        assert index.add(DOCS[:5], [1] * 5) == 0
        assert index.partners == [2]
    assert LeakScanner(live).scan(DOCS[0]).verdict == "pass"
