"""The index: sized by the leak length, persistent, growing, rebuilt without withdrawn partners."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.guard.conftest import partner_of
from tests.guard.corpus import petitions
from tokenclub.guard.detection.coverage import document_entries
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing.commonness import DEPTH
from tokenclub.guard.indexing.doctable import DOCUMENT, ENTRY, DocTable, merge_runs
from tokenclub.guard.indexing.index import (
    DEFAULT_CAPACITY,
    GROWTH,
    SKETCH_MIN_WIDTH,
    GuardIndex,
    IndexParams,
    LiveIndex,
    document_keys,
    logged_parts,
    open_index,
    rebuild,
    writer,
)
from tokenclub.guard.normalize import nfkc_starts, normalize

DOCS = petitions()[:60]
PARAMS = IndexParams.for_leak_length(50, seed=11)


def test_params_follow_the_leak_length() -> None:
    assert (PARAMS.width, PARAMS.stride, PARAMS.hits, PARAMS.guaranteed_length()) == (26, 5, 5, 50)
    assert PARAMS.guaranteed_length(strict=True) == 45
    long = IndexParams.for_leak_length(128, seed=1)
    assert (long.stride, long.guaranteed_length()) == (20, 125)
    assert long.bytes_per_letter() == pytest.approx(8 / 8 / 20)  # no attribution filter by default
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


WITH_FILTERS = dataclasses.replace(PARAMS, partner_bits=4.0)
"""A generation made with attribution filters, as every one was before the document table named partners."""


@pytest.mark.parametrize("params", [PARAMS, WITH_FILTERS], ids=["document table", "attribution filter"])
def test_attribution_names_each_owner_among_many_partners(tmp_path: Path, params: IndexParams) -> None:
    with writer(tmp_path / "guard", params, capacity=100_000) as index:
        index.add(DOCS, [100 + i % 40 for i in range(len(DOCS))])  # 40 partners
        index.add(DOCS[:3], [500] * 3)  # a reseller holds the first three again
    keys, owner = document_keys(params, DOCS)
    for doc in range(len(DOCS)):
        mine = keys[owner == doc]
        expected = (100 + doc % 40, 500) if doc < 3 else (100 + doc % 40,)
        assert index.attribute(mine) == expected
        assert set(expected) <= set(index.attribute(mine[:1]))  # one gram
        if params.partner_bits:  # the integer path (a few salted keys) agrees with the vectorised one
            small = index._attribute_small(sorted(index.partners), mine[:2].tolist())
            assert index.attribute(mine[:2]) == small
        else:  # exact: one gram of a document is its partner's alone, unless the reseller's too
            assert index.attribute(mine[:1]) == expected
        # a partner's own text is its alone: not when a reseller holds it too
        assert index.owned_by(mine, 100 + doc % 40) == (doc >= 3) and not index.owned_by(mine, 500)
    assert index.attribute(keys[:0]) == ()
    chance = np.random.default_rng(3).integers(0, 2**64, size=1, dtype=np.uint64)
    if not params.partner_bits:
        beside = np.concatenate((chance, keys[owner == 5]))
        assert index.attribute(beside) == ()  # no document holds the chance key
        assert index.owned_by(beside, 105) and not index.owned_by(chance, 105)  # passed over, not enough
    files = {p.name for p in index.folder.glob("seg-*/*.bin")}
    assert any(name.startswith("partner-") for name in files) == bool(params.partner_bits)


def test_a_generation_made_with_attribution_filters_keeps_them_as_it_regrows(tmp_path: Path) -> None:
    """Its parameters are fixed when it is made: an index written before the document table named
    partners regrows with a refilled attribution filter, and attributes from it."""
    root = tmp_path / "guard"
    with writer(root, WITH_FILTERS, capacity=2_000) as index:
        index.add(DOCS[:20], [1] * 20)
        index.add(DOCS[20:], [2] * 40)
    grown = open_index(root)
    assert grown is not None and grown.params.partner_bits == 4.0
    assert [p.name for p in grown.folder.glob("seg-*/partner-*.bin")]
    keys, owner = document_keys(WITH_FILTERS, DOCS)
    assert grown.attribute(keys[owner == 0]) == (1,) and grown.attribute(keys[owner == 59]) == (2,)
    assert grown.sketch is not None
    filters, capacity = grown.nbytes - grown.sketch.nbytes, grown.segments[0].capacity
    assert filters >= (WITH_FILTERS.member_bits + WITH_FILTERS.partner_bits) / 8 * capacity  # both counted


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


def test_a_full_index_regrows_to_its_corpus_and_readers_follow(tmp_path: Path) -> None:
    root = tmp_path / "guard"
    live = LiveIndex(root, check_every_s=0)
    assert live.current() is None
    with writer(root, PARAMS, capacity=2_000) as index:
        index.add(DOCS[:20], [1] * 20)
    first = live.current()
    assert first is not None and len(first.segments) == 1
    early, _ = document_keys(PARAMS, DOCS[:20])
    assert first.segments[0].capacity == math.ceil(len(early) * GROWTH)  # past 2,000: sized to the batch
    every, _ = document_keys(PARAMS, DOCS[:20], step=1)
    assert first.sketch is not None
    before = first.sketch.estimate(every)
    with writer(root) as index:
        index.add(DOCS[20:], [2] * 40)
    grown = live.current()
    assert grown is not None and grown is not first
    keys, owner = document_keys(PARAMS, DOCS)
    assert [(s.elements, s.capacity) for s in grown.segments] == [(len(keys), math.ceil(len(keys) * GROWTH))]
    assert sorted(p.name for p in grown.folder.glob("seg-*")) == [grown.segments[0].name]
    assert grown.holds(keys).all()
    assert grown.attribute(keys[owner == 0]) == (1,) and grown.attribute(keys[owner == 59]) == (2,)
    assert grown.sketch is not None and (grown.sketch.estimate(every) >= before).all()
    probe = np.concatenate((keys, np.random.default_rng(1).integers(0, 2**64, size=5_000, dtype=np.uint64)))
    assert grown.contains_keys(probe.tolist()) == grown.contains(probe).tolist()


def test_a_fresh_index_is_sized_from_what_it_holds(tmp_path: Path) -> None:
    """No fixed allocation: a few documents take a few kilobytes, more take proportionally more."""
    sizes = []
    for count in (4, 60):
        with writer(tmp_path / str(count), PARAMS) as index:
            for start in range(0, count, 4):
                index.add(DOCS[start : start + 4], [1] * len(DOCS[start : start + 4]))
            grams = sum(s.elements for s in index.segments)
            filters = index.nbytes - (index.sketch.nbytes if index.sketch else 0)
            held = max(DEFAULT_CAPACITY, math.ceil(grams * GROWTH))
            assert filters <= (PARAMS.member_bits + PARAMS.partner_bits) / 8 * held + 128
            assert index.sketch is not None and index.sketch.nbytes == DEPTH * SKETCH_MIN_WIDTH
            sizes.append(filters)
    assert sizes[0] < 16_000 and sizes[1] > 4 * sizes[0]


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
    kept = rebuilt.segments[0].elements
    assert [s.capacity for s in rebuilt.segments] == [max(kept, DEFAULT_CAPACITY)]  # fitted, not 50,000
    after = LeakScanner(live)
    assert after.scan(DOCS[0]).verdict == "pass"
    assert after.scan(DOCS[40]).partner_ids == (2,)
    with writer(root) as index:
        assert index.add(DOCS[:5], [1] * 5) == 0
        assert index.partners == [2]
    assert LeakScanner(live).scan(DOCS[0]).verdict == "pass"


def _merged_one_at_a_time(runs: list[np.ndarray]) -> list[np.ndarray]:
    """The runs as merging the newest into the one before it, one merge at a time, leaves them."""
    table: list[np.ndarray] = []
    for run in runs:
        table.append(run)
        while len(table) >= 2 and 2 * len(table[-1]) >= len(table[-2]):
            newer = table.pop()
            table[-1] = np.insert(table[-1], np.searchsorted(table[-1]["key"], newer["key"]), newer)
    return table


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=40), min_size=1, max_size=25))
def test_runs_merged_in_one_pass_equal_runs_merged_one_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]]
) -> None:
    """Equal keys of several runs (a gram in many documents) keep the order they had."""
    where = tmp_path_factory.mktemp("docs")
    runs, first = [], 0
    for keys in batches:
        run = np.empty(len(keys), dtype=ENTRY)
        run["key"], run["doc"], run["ordinal"] = keys, first, np.arange(len(keys))
        run = run[np.argsort(run["key"], kind="stable")]
        runs.append(run)
        np.save(where / f"run-{first:09d}.npy", run)
        merge_runs(where)
        first += len(keys)
    stored = [np.load(path) for path in sorted(where.glob("run-*.npy"))]
    expected = _merged_one_at_a_time(runs)
    assert [run.tobytes() for run in stored] == [run.tobytes() for run in expected]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=40), min_size=1, max_size=6),
    st.lists(st.integers(0, 40), max_size=20),
)
def test_a_look_up_finds_every_entry_of_every_key_and_no_other(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], asked: list[int]
) -> None:
    """Keys repeat inside a run and across runs (a gram of many documents); some asked keys are
    in none (a chance filter hit), some asked twice."""
    where = tmp_path_factory.mktemp("guard")
    (where / "docs").mkdir()
    entries, first = [], 0
    for batch in batches:
        run = np.empty(len(batch), dtype=ENTRY)
        ordinals = np.arange(len(batch))
        run["key"], run["doc"], run["ordinal"] = batch, first + ordinals % 3, ordinals
        entries += [(int(k), int(d), int(o)) for k, d, o in run.tolist()]
        np.save(where / "docs" / f"run-{first:09d}.npy", run[np.argsort(run["key"], kind="stable")])
        first += len(batch)
    table = DocTable(where)
    keys = np.array(asked, dtype=np.uint64)
    found = sorted((k, hit.doc, hit.ordinal) for k, hit in table.lookup_at(keys))
    expected = sorted((k, d, o) for k, key in enumerate(asked) for stored, d, o in entries if stored == key)
    assert found == expected
    assert table.holds_any(keys) == bool(expected)


def test_the_documents_letters_and_partners_merge_like_the_runs(tmp_path: Path) -> None:
    """Thirty adds of two documents leave a few `docs-` files, not thirty, holding the same
    letters and partners as one add of all sixty; a reader that meets a file a merge has not
    removed yet (it overlaps the merged one) reads the same table."""
    partners = [1 + i % 3 for i in range(len(DOCS))]
    with writer(tmp_path / "whole", PARAMS) as index:
        index.add(DOCS, partners)
        whole = index.docs.documents.copy()
    with writer(tmp_path / "parts", PARAMS) as index:
        for start in range(0, len(DOCS), 2):
            index.add(DOCS[start : start + 2], partners[start : start + 2])
        where = index.folder / "docs"
    files = sorted(where.glob("docs-*.npy"))
    sizes = [len(np.load(path)) for path in files]
    assert len(whole) == len(DOCS) == sum(sizes) and len(files) < 6
    assert all(2 * later < earlier for earlier, later in itertools.pairwise(sizes))
    assert whole["partner"].tolist() == partners
    assert DocTable(where.parent).documents.tobytes() == whole.tobytes()
    stale = np.empty(3, dtype=DOCUMENT)
    stale[:] = whole[40:43]
    np.save(where / "docs-000000040.npy", stale)
    assert DocTable(where.parent).documents.tobytes() == whole.tobytes()


def test_the_document_table_measures_a_run_in_nfkc_letters(tmp_path: Path) -> None:
    """Each document's NFKC letters from its merged `nfkc-` files: all of them exactly, a third
    of it counted by whole blocks (at least the exact count, at most a block more at either
    end); a generation written before the blocks has none to give."""
    stride = PARAMS.stride
    with writer(tmp_path / "parts", PARAMS) as index:
        for start in range(0, len(DOCS), 2):
            index.add(DOCS[start : start + 2], [partner_of(start), partner_of(start + 1)])
        table, where = index.docs, index.folder / "docs"
    assert 1 < len(list(where.glob("nfkc-*.npy"))) < 6
    for doc, text in enumerate(DOCS):
        normalized = normalize(text)
        starts = nfkc_starts(normalized.letters, normalized.owners)
        assert table.nfkc_letters(doc, 0, len(starts)) == int(starts.sum())
        low, high = len(starts) // 3, 2 * len(starts) // 3
        widest = int(starts[low // stride * stride : -(-high // stride) * stride].sum())
        counted = table.nfkc_letters(doc, low, high)
        assert counted == widest and counted >= int(starts[low:high].sum())
    assert table.without_nfkc == 0
    oldest, *later = sorted(where.glob("nfkc-*.npy"))
    oldest.unlink()  # as in a generation that kept no blocks for its first documents
    assert DocTable(where.parent, stride).without_nfkc == int(later[0].stem.split("-")[1]) > 0
    for path in later:
        path.unlink()
    older = DocTable(where.parent, stride)
    assert older.nfkc_letters(0, 0, 50) is None and older.without_nfkc == len(DOCS)


def test_the_document_table_merges_its_runs_and_still_finds_every_entry(tmp_path: Path) -> None:
    """Thirty small batches leave a few runs, each under half the size of the one before, and
    every stored gram is found with its document and ordinal, by key and by document."""
    with writer(tmp_path / "guard", PARAMS) as index:
        for start in range(0, len(DOCS), 2):
            index.add(DOCS[start : start + 2], [1, 1])
        runs = sorted((index.folder / "docs").glob("run-*.npy"))
        sizes = [len(np.load(path, mmap_mode="r")) for path in runs]
        keys, owner = document_keys(PARAMS, DOCS)
        assert sum(sizes) == len(keys) and len(runs) < 6
        assert all(2 * later < earlier for earlier, later in itertools.pairwise(sizes))
        starts = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=len(DOCS)))[:-1]))
        stored = set(zip(owner.tolist(), (np.arange(len(keys)) - starts[owner]).tolist(), strict=True))
        assert {(hit.doc, hit.ordinal) for hit in index.docs.lookup(np.unique(keys))} == stored
        for doc in (0, 1, 29, 30, len(DOCS) - 1):
            found = document_entries(index, [doc])
            assert sorted(found["ordinal"].tolist()) == sorted(o for d, o in stored if d == doc)
        found = document_entries(index, [29, 0, 30, 0])  # several at once, across runs
        assert sorted(zip(found["doc"].tolist(), found["ordinal"].tolist(), strict=True)) == sorted(
            (d, o) for d, o in stored if d in (0, 29, 30)
        )
