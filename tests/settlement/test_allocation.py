"""The settlement maths: exact numbers, and properties over any partners, weights and pools."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenclub.ledger.pricing import PriceList
from tokenclub.settlement.allocation import Payout, allocate, free_usage_krw, pay_out, pool_krw

weights_st = st.dictionaries(st.integers(1, 10_000), st.integers(0, 10**12), min_size=1, max_size=60).filter(
    lambda w: sum(w.values()) > 0
)
pools = st.integers(0, 10**13)


def test_pool_is_rate_times_profit_rounded_down() -> None:
    assert pool_krw(1_000_001, 100_003, Fraction(3, 10)) == 269_999  # 0.3 × 899,998 = 269,999.4
    assert pool_krw(500, 900, Fraction(3, 10)) == 0
    assert pool_krw(10**15, 0, Fraction(1)) == 10**15
    with pytest.raises(ValueError):
        pool_krw(1, 0, Fraction(11, 10))


def test_largest_remainder_to_the_won() -> None:
    # 10 × 2/7 = 2.857, 10 × 5/7 = 7.143: quotas 2 + 7, the won left goes to remainder 6/7.
    assert allocate(10, {1: 2, 2: 5}) == {1: 3, 2: 7}
    # 5 × 1/4, 5 × 1/4, 5 × 2/4 = 1.25, 1.25, 2.5: the won left goes to the half.
    assert allocate(5, {1: 1, 2: 1, 3: 2}) == {1: 1, 2: 1, 3: 3}
    # 3 × (0.1, 0.2, 0.2, 0.5) = 0.3, 0.6, 0.6, 1.5: two won left, both 0.6 remainders get one.
    assert allocate(3, {1: 1, 2: 2, 3: 2, 4: 5}) == {1: 0, 2: 1, 3: 1, 4: 1}


def test_ties_go_to_the_larger_weight_then_the_smaller_key() -> None:
    # 2 × 1/4, 2 × 3/4 = 0.5, 1.5: equal remainders, the larger weight gets the won.
    assert allocate(2, {1: 1, 2: 3}) == {1: 0, 2: 2}
    # 100 / 3 = 33.33 each: equal remainders and weights, the smallest key gets the won.
    assert allocate(100, {"b": 1, "a": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}


def test_zero_weights_and_bad_input() -> None:
    assert allocate(0, {1: 0, 2: 0}) == {1: 0, 2: 0}
    assert allocate(9, {1: 0, 2: 4}) == {1: 0, 2: 9}
    with pytest.raises(ValueError):
        allocate(1, {1: 0})
    with pytest.raises(ValueError):
        allocate(-1, {1: 1})
    with pytest.raises(ValueError):
        allocate(1, {1: -1, 2: 2})


@given(pool=pools, weights=weights_st)
def test_payouts_sum_to_the_pool_and_stay_within_a_won(pool: int, weights: dict[int, int]) -> None:
    shares = allocate(pool, weights)
    total = sum(weights.values())
    assert sum(shares.values()) == pool
    assert shares.keys() == weights.keys()
    for partner, weight in weights.items():
        exact = Fraction(pool * weight, total)
        assert abs(shares[partner] - exact) < 1
        assert shares[partner] in (exact.__floor__(), exact.__ceil__())


@given(pool=pools, weights=weights_st, seed=st.integers(0, 2**32))
def test_result_does_not_depend_on_the_order_partners_come_in(
    pool: int, weights: dict[int, int], seed: int
) -> None:
    items = list(weights.items())
    random.Random(seed).shuffle(items)
    assert allocate(pool, dict(items)) == allocate(pool, weights)


@given(pool=pools, weights=weights_st)
def test_a_larger_weight_never_gets_less(pool: int, weights: dict[int, int]) -> None:
    shares = allocate(pool, weights)
    ranked = sorted(weights, key=lambda p: (weights[p], -p))
    amounts = [shares[p] for p in ranked]
    assert amounts == sorted(amounts)


def test_minimum_payout_carries_small_amounts_whole() -> None:
    result = pay_out({1: 999, 2: 1_000, 3: 400}, {3: 700, 4: 5}, minimum=1_000)
    assert result == {
        1: Payout(999, 0, 0),
        2: Payout(1_000, 0, 1_000),
        3: Payout(400, 700, 1_100),
        4: Payout(0, 5, 0),
    }
    assert [result[p].carried_out for p in (1, 2, 3, 4)] == [999, 0, 0, 5]
    assert pay_out({1: 0}, {}, minimum=0) == {1: Payout(0, 0, 0)}


@given(
    periods=st.lists(st.tuples(pools, weights_st), min_size=1, max_size=8),
    minimum=st.integers(0, 10**6),
)
def test_carry_overs_conserve_money_across_periods(
    periods: list[tuple[int, dict[int, int]]], minimum: int
) -> None:
    carried: dict[int, int] = {}
    paid_total = 0
    for pool, weights in periods:
        result = pay_out(allocate(pool, weights), carried, minimum)
        assert sum(p.paid + p.carried_out for p in result.values()) == pool + sum(carried.values())
        assert all(p.paid == 0 or p.paid >= minimum for p in result.values())
        assert all(p.carried_out < minimum or p.carried_out == 0 for p in result.values())
        paid_total += sum(p.paid for p in result.values())
        carried = {partner: p.carried_out for partner, p in result.items() if p.carried_out}
    assert paid_total + sum(carried.values()) == sum(pool for pool, _ in periods)


def test_free_usage_value_is_list_price_rounded_down() -> None:
    prices = PriceList(2_000, 8_000)
    assert free_usage_krw(1_000_000, 0, prices) == 2_000
    assert free_usage_krw(123_456, 7_890, prices) == 310  # 246.912 + 63.120 = 310.032
    assert free_usage_krw(499, 0, prices) == 0
