"""The settlement maths, pure and exact: integers and fractions only, no floats, no I/O.

Everything here is a function of its arguments, so the same inputs give the same won on
every machine, in every order, and the properties in `tests/settlement` can check it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, TypeVar

from tokenclub.ledger.pricing import MICRO, PriceList

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

K = TypeVar("K", bound="SupportsRichComparison")


class PoolBasis(StrEnum):
    """What the pool rate applies to, the operator's choice frozen into each closed period."""

    PROFIT = "profit"
    """rate × max(0, revenue − costs): a share of the API business's profit."""
    REVENUE = "revenue"
    """rate × revenue, costs not deducted: a share of the API revenue."""


def pool_krw(revenue_krw: int, cost_krw: int, rate: Fraction, basis: PoolBasis = PoolBasis.PROFIT) -> int:
    """rate × the basis (profit or revenue, never below zero), rounded down: the pool never
    exceeds what the rate allows."""
    if not 0 <= rate <= 1:
        raise ValueError(f"pool rate must be within [0, 1], got {rate}")
    base = revenue_krw - cost_krw if basis is PoolBasis.PROFIT else revenue_krw
    return max(0, base) * rate.numerator // rate.denominator


def allocate(pool: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split `pool` won among partners in proportion to their weights, to the won.

    Largest remainder: each partner first gets floor(pool × w / W); the won still left (fewer
    than there are partners) go one each to the largest remainders, ties to the larger
    weight, then to the smaller key. The sort makes the result a function of the (key,
    weight) pairs alone, never of the order they came in; every payout is within 1 won of
    its exact share, and the payouts sum to the pool.
    """
    if pool < 0:
        raise ValueError(f"pool must not be negative, got {pool}")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    total = sum(weights.values())
    if total == 0:
        if pool:
            raise ValueError("a non-zero pool needs at least one positive weight")
        return dict.fromkeys(weights, 0)
    shares: dict[K, int] = {}
    remainders: list[tuple[int, int, K]] = []
    for partner, weight in weights.items():
        quota, remainder = divmod(pool * weight, total)
        shares[partner] = quota
        if remainder:
            remainders.append((-remainder, -weight, partner))
    left = pool - sum(shares.values())
    remainders.sort()
    for _, _, partner in remainders[:left]:
        shares[partner] += 1
    return shares


@dataclass(frozen=True, slots=True)
class Payout:
    """One partner's money in one period: what it earned, what it brought in, what is paid now."""

    allocated: int
    carried_in: int
    paid: int

    @property
    def due(self) -> int:
        return self.allocated + self.carried_in

    @property
    def carried_out(self) -> int:
        return self.due - self.paid


def pay_out(allocated: Mapping[int, int], carried_in: Mapping[int, int], minimum: int) -> dict[int, Payout]:
    """Apply the minimum payout: an amount due of at least `minimum` is paid whole, a smaller one
    is carried whole to the next period, so no won is split off or lost between periods."""
    if minimum < 0:
        raise ValueError(f"minimum payout must not be negative, got {minimum}")
    result: dict[int, Payout] = {}
    for partner in allocated.keys() | carried_in.keys():
        share = allocated.get(partner, 0)
        carry = carried_in.get(partner, 0)
        if share < 0 or carry < 0:
            raise ValueError(f"partner {partner}: amounts must not be negative")
        due = share + carry
        result[partner] = Payout(share, carry, due if due >= minimum and due > 0 else 0)
    return result


def free_usage_krw(prompt_tokens: int, completion_tokens: int, prices: PriceList) -> int:
    """What free tokens would have cost at list price, rounded down to the won like billing."""
    return prices.cost_micro_krw(prompt_tokens, completion_tokens) // MICRO
