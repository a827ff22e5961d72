"""A guard index over one month of real petitions, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guard.corpus import petitions
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.indexing.index import GuardIndex, IndexParams, open_index, writer

PARTNERS = (1, 2, 3)


def partner_of(doc: int) -> int:
    """Petitions are dealt to three partners in turn."""
    return PARTNERS[doc % len(PARTNERS)]


@pytest.fixture(scope="session")
def guard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guard") / "guard"
    docs = petitions()
    with writer(root, IndexParams.for_leak_length(50, seed=20190501), capacity=380_000) as index:
        for first in range(0, len(docs), 128):
            batch = docs[first : first + 128]
            index.add(batch, [partner_of(first + i) for i in range(len(batch))])
    return root


@pytest.fixture(scope="session")
def guard_index(guard_root: Path) -> GuardIndex:
    index = open_index(guard_root)
    assert index is not None
    return index


@pytest.fixture(scope="session")
def scanner(guard_index: GuardIndex) -> LeakScanner:
    return LeakScanner(guard_index)
