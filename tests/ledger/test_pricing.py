"""Hypothesis: the pricing maths never loses or invents a token or a won."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tokenclub.ledger.pricing import MICRO, PriceList, krw_due, plan_hold, split_usage

counts = st.integers(0, 10**7)
prices = st.builds(PriceList, st.integers(0, 100_000), st.integers(0, 100_000))


@given(prompt=counts, completion=counts, held=counts)
def test_split_conserves_tokens_and_uses_free_first(prompt: int, completion: int, held: int) -> None:
    split = split_usage(prompt, completion, held)
    assert split.free_prompt + split.paid_prompt == prompt
    assert split.free_completion + split.paid_completion == completion
    assert split.free == min(prompt + completion, held)
    assert min(split.free_prompt, split.free_completion, split.paid_prompt, split.paid_completion) >= 0
    if split.free_completion:
        assert split.paid_prompt == 0


@given(costs=st.lists(st.integers(0, 10**10), max_size=50))
def test_per_request_krw_adds_up_to_the_floor_of_the_exact_total(costs: list[int]) -> None:
    billed, charged = 0, 0
    for cost in costs:
        charged += krw_due(billed, cost)
        billed += cost
    assert charged == billed // MICRO


@given(worst=counts, allowance=st.integers(-5, 10**7), price=prices, prompt=counts, completion=counts)
def test_a_hold_always_covers_any_usage_within_the_worst_case(
    worst: int, allowance: int, price: PriceList, prompt: int, completion: int
) -> None:
    plan = plan_hold(worst, allowance, price)
    assert plan.free_tokens == min(worst, max(allowance, 0))
    if prompt + completion <= worst:
        split = split_usage(prompt, completion, plan.free_tokens)
        assert -(-price.cost_micro_krw(split.paid_prompt, split.paid_completion) // MICRO) <= plan.krw


def test_exact_prices() -> None:
    price = PriceList(2_000, 8_000)
    assert price.cost_micro_krw(1_000, 500) == 6_000_000
    assert krw_due(999_999, 1) == 1
    assert krw_due(0, 999_999) == 0
    assert plan_hold(1_000, 400, price).krw == 6
