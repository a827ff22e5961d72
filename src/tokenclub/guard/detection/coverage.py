"""Coverage: how much of each contributed document a customer has been sent, in pieces of any size.

Chains and joins (`guard/detection/fragments.py`, `guard/detection/accumulate.py`) need two hits in a row; a
patient customer who takes a document in pieces shorter than that gets it all. Coverage
counts instead every distinct indexed gram of a document that a delivered reply carried,
single hits included: the reply's grams at every position are looked up in the index and,
when they count (not common, not public), in the gram→document table (`guard/indexing/doctable.py`),
which gives the document and the gram's place in it. The letters a customer holds of a
document are the union of its grams' spans (`width` letters every `stride`), so the same
piece sent twice counts once and neighbouring pieces do not double.

Two limits (fractions of the document's guard letters, never below `floor` letters, so that a
stock sentence an honest reply shares with a short document is not a collection): a customer past
`customer` of any document is refused; a document whose coverage summed over all customers
(the union of their grams) passes `document` is capped: every customer holding grams of it is
refused and the operator is alerted, so that many accounts do not multiply the allowance.

This module is the arithmetic only; `guard/state/coverage_store.py` keeps the grams in the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tokenclub.guard.indexing.index import GuardIndex, IndexParams, document_keys

Grams = Mapping[int, frozenset[int]]  # document → ordinals of its grams


@dataclass(frozen=True, slots=True)
class Limits:
    """Coverage limits as fractions of a document's guard letters, kept for `window_s`."""

    customer: float
    document: float
    window_s: int
    reserve: int = 49
    hold_s: int = 600
    floor: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.customer <= self.document <= 1:
            raise ValueError(
                f"coverage limits need 0 < customer ({self.customer}) <= document ({self.document}) <= 1"
            )
        if self.window_s < 1 or self.reserve < 0 or self.hold_s < 1 or self.floor < 0:
            raise ValueError("coverage window_s and hold_s must be positive, reserve and floor not negative")

    def customer_letters(self, letters: int) -> int:
        """Letters of a document of `letters` one customer may hold (at least `floor`: a short
        document's stock sentence in an honest reply is not a collection)."""
        return max(self.floor, math.floor(self.customer * letters))

    def document_letters(self, letters: int) -> int:
        """Letters of a document all customers together may hold (at least `floor`)."""
        return max(self.floor, math.floor(self.document * letters))


def reply_grams(index: GuardIndex, text: str, own: int | None = None) -> dict[int, frozenset[int]]:
    """The indexed grams of each document that `text` carries (at any position), except the
    reader's own partner's (`own`)."""
    if not text or not index.docs.present:
        return {}
    keys, _ = document_keys(index.params, [text], step=1)
    if not len(keys):
        return {}
    held = keys[index.contains(keys)]
    found: dict[int, set[int]] = {}
    for hit in index.docs.lookup(np.unique(held)):
        if own is not None and index.docs.partner(hit.doc) == own:
            continue
        found.setdefault(hit.doc, set()).add(hit.ordinal)
    return {doc: frozenset(ordinals) for doc, ordinals in found.items()}


def covered_letters(ordinals: Iterable[int], params: IndexParams, letters: int) -> int:
    """Letters of a document of `letters` guard letters that the grams `ordinals` span."""
    ends = sorted(set(ordinals))
    total = 0
    for at, ordinal in enumerate(ends):
        start = ordinal * params.stride
        end = min(start + params.width, letters)
        if at + 1 < len(ends):
            end = min(end, ends[at + 1] * params.stride)
        total += max(0, end - start)
    return total


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a customer stands: the document it holds most of (as a share of its limit), and
    the capped documents it holds grams of."""

    doc: int | None
    letters: int
    limit: int
    capped: tuple[int, ...]

    @property
    def refused(self) -> bool:
        return bool(self.capped) or (self.doc is not None and self.letters >= self.limit)


def standing(
    mine: Grams,
    everyone: Grams,
    reserved: int,
    params: IndexParams,
    lengths: Mapping[int, int],
    limits: Limits,
) -> Standing:
    """The customer's standing from its grams (`mine`), all customers' grams of the same
    documents (`everyone`) and `reserved` letters of its requests in flight: a document counts
    as exhausted when what the customer holds plus the reservations reaches its limit."""
    worst: tuple[float, int | None, int, int] = (-1.0, None, 0, 0)
    capped: list[int] = []
    for doc, ordinals in sorted(mine.items()):
        letters = lengths[doc]
        held = covered_letters(ordinals, params, letters) + reserved
        limit = limits.customer_letters(letters)
        share = held / limit if limit else math.inf
        if share > worst[0]:
            worst = (share, doc, held, limit)
        if covered_letters(everyone.get(doc, ordinals), params, letters) >= limits.document_letters(letters):
            capped.append(doc)
    return Standing(worst[1], worst[2], worst[3], tuple(capped))
