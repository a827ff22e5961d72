"""Pure pricing maths: hold sizes, the free/paid split of real usage, and exact KRW amounts.

List prices are KRW per million tokens, so a request's exact cost is a whole number of
micro-won. Receivable KRW for a customer is always the floor of its running micro-won total;
charging the difference of floors per request means rounding never drifts however many
requests there are.
"""

from __future__ import annotations

from dataclasses import dataclass

MICRO = 1_000_000


@dataclass(frozen=True, slots=True)
class PriceList:
    """KRW per million input and output tokens of the served model."""

    input_krw_per_mtok: int
    output_krw_per_mtok: int

    def cost_micro_krw(self, prompt_tokens: int, completion_tokens: int) -> int:
        return prompt_tokens * self.input_krw_per_mtok + completion_tokens * self.output_krw_per_mtok

    def worst_krw(self, tokens: int) -> int:
        """The most `tokens` paid tokens can cost in whole won, plus one won of rounding carry."""
        per_token = max(self.input_krw_per_mtok, self.output_krw_per_mtok)
        return -(-tokens * per_token // MICRO) + 1 if tokens else 0


@dataclass(frozen=True, slots=True)
class HoldPlan:
    free_tokens: int
    krw: int


def plan_hold(worst_tokens: int, allowance_left: int, prices: PriceList) -> HoldPlan:
    """Free allowance first; whatever the worst case could exceed it by is held in KRW."""
    free = min(worst_tokens, max(allowance_left, 0))
    return HoldPlan(free_tokens=free, krw=prices.worst_krw(worst_tokens - free))


@dataclass(frozen=True, slots=True)
class Split:
    """Real usage divided into the free part (prompt first) and the paid part."""

    free_prompt: int
    free_completion: int
    paid_prompt: int
    paid_completion: int

    @property
    def free(self) -> int:
        return self.free_prompt + self.free_completion

    @property
    def paid(self) -> int:
        return self.paid_prompt + self.paid_completion


def split_usage(prompt_tokens: int, completion_tokens: int, free_held: int) -> Split:
    free_prompt = min(prompt_tokens, free_held)
    free_completion = min(completion_tokens, free_held - free_prompt)
    return Split(
        free_prompt, free_completion, prompt_tokens - free_prompt, completion_tokens - free_completion
    )


def krw_due(billed_micro_before: int, cost_micro: int) -> int:
    """Whole won to add to the receivable so that it stays floor(total micro-won / 10^6)."""
    return (billed_micro_before + cost_micro) // MICRO - billed_micro_before // MICRO
