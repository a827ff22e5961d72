"""The charge of a cut stream whose usage the upstream cannot count: a documented estimate.

When a stream breaks off (the guard cut it, the client left, the upstream failed mid-way) and
the upstream gave no usage and has no tokenize endpoint (the OpenAI API, most hosted APIs),
the delivered text is still owed for. Rather than leave the hold pending until its TTL, the
request is settled at once on this estimate, counted with the pinned tokenizer
(`TOKENCLUB_TOKENIZER_PATH`, default the shipped Korean BPE):

- completion = tokens of the text delivered to the client;
- prompt = tokens of the prompt's text (message contents or the completion prompt), without
  the chat template's wrapper tokens or tool schemas, so the estimate errs in the customer's
  favour.

The ledger caps the charge at the hold in any case.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from tokenclub.ledger.holds import Usage
from tokenclub.settings import get_settings
from tokenclub.tokenizer import TokenCounter
from tokenclub.tokenizer_store import resolve_tokenizer


@lru_cache(maxsize=1)
def pinned_counter() -> TokenCounter:
    """The pinned tokenizer, loaded on the first estimate (most gateways never need it)."""
    return TokenCounter(resolve_tokenizer(get_settings()))


def estimate_usage(prompt_text: str, delivered: Sequence[str], counter: TokenCounter | None = None) -> Usage:
    """Tokens of the prompt text and of the text delivered in each choice, with the pinned tokenizer."""
    prompt, *completions = (counter or pinned_counter()).count([prompt_text, *delivered])
    return Usage(prompt, sum(completions))
