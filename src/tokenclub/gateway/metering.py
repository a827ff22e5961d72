"""Exact token usage of a reply: from the upstream's usage when it gives one, else counted."""

from __future__ import annotations

from typing import Any

from tokenclub.gateway.billing import Usage
from tokenclub.gateway.requests import ParsedRequest
from tokenclub.gateway.upstream import ModelRoute, Upstream, UpstreamError


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """The upstream's own figures, when present and well-formed."""
    usage = (data or {}).get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return Usage(prompt, completion)
    return None


async def prompt_tokens(upstream: Upstream, route: ModelRoute, endpoint: str, parsed: ParsedRequest) -> int:
    """The prompt as the model saw it: chat templates are applied upstream, so for chat a
    one-token probe asks the upstream itself; a plain completion prompt is tokenized directly."""
    if endpoint == "completions":
        return await upstream.count_tokens(route, parsed.prompt_text)
    probe = {k: v for k, v in parsed.body.items() if k not in ("stream", "stream_options")}
    probe.update(max_tokens=1, stream=False)
    found = usage_from(await upstream.complete(route, "/chat/completions", probe))
    if found is None:
        raise UpstreamError("upstream reported no prompt usage")
    return found.prompt_tokens


async def counted_usage(
    upstream: Upstream, route: ModelRoute, endpoint: str, parsed: ParsedRequest, generated: str
) -> Usage:
    """Usage of a streamed reply counted with the served model's tokenizer: what was generated
    (all of it, or as far as a disconnected client got) and the prompt."""
    completion = await upstream.count_tokens(route, generated)
    return Usage(await prompt_tokens(upstream, route, endpoint, parsed), completion)
