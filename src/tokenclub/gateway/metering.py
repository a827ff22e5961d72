"""Exact token usage of a reply the upstream gave no usage figures for: counted with the
served model's own tokenizer."""

from __future__ import annotations

from tokenclub.gateway.billing import Usage
from tokenclub.gateway.formats import CHAT, usage_from
from tokenclub.gateway.requests import ParsedRequest
from tokenclub.gateway.upstream import ModelRoute, Upstream, UpstreamError


async def prompt_tokens(upstream: Upstream, route: ModelRoute, parsed: ParsedRequest) -> int:
    """The prompt as the model saw it: chat templates are applied upstream, so for chat a
    one-token probe asks the upstream itself; plain prompts and embeddings inputs are
    tokenized directly (token-id prompts count as given)."""
    if parsed.format is not CHAT:
        counts = [await upstream.count_tokens(route, text) for text in parsed.prompts]
        return sum(counts) + parsed.prompt_token_ids
    probe = {k: v for k, v in parsed.body.items() if k not in ("stream", "stream_options")}
    probe.update(max_tokens=1, stream=False, n=1)
    found = usage_from(await upstream.complete(route, CHAT.path, probe))
    if found is None:
        raise UpstreamError("upstream reported no prompt usage")
    return found.prompt_tokens


async def counted_usage(
    upstream: Upstream, route: ModelRoute, parsed: ParsedRequest, generated: list[str]
) -> Usage:
    """Usage counted with the served model's tokenizer: what each choice generated (all of it,
    or as far as a disconnected client got) and the prompt. For `n > 1` the prompt is counted
    once, as upstreams bill it."""
    completion = sum([await upstream.count_tokens(route, text) for text in generated])
    return Usage(await prompt_tokens(upstream, route, parsed), completion)
