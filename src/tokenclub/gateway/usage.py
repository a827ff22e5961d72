"""Usage events as the API and the CLI show them."""

from __future__ import annotations

from typing import Any

from tokenclub.db.schema import UsageEvent


def usage_event_dict(row: UsageEvent) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "key_id": row.key_id,
        "model": row.model,
        "endpoint": row.endpoint,
        "streamed": row.streamed,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "free_tokens": row.free_prompt_tokens + row.free_completion_tokens,
        "paid_tokens": row.paid_prompt_tokens + row.paid_completion_tokens,
        "krw": row.krw,
        "latency_ms": row.latency_ms,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
    }
