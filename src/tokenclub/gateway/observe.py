"""Per-request bookkeeping around every route: a request id, the `x-request-id` and
`x-ratelimit-*` headers, request metrics, and one structured access-log line.

A pure ASGI middleware (not Starlette's `BaseHTTPMiddleware`, which buffers streams). Handlers
fill in the request's `RequestContext` (`request.state.ctx`) as they learn the key, model and
usage; the line is written when the response has been sent (for a stream, once its usage is
settled). The line never carries a key or any prompt or reply text: only the key's display
prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenclub.gateway.errors import error_response
from tokenclub.gateway.metrics import Metrics

access_log = logging.getLogger("tokenclub.access")
log = logging.getLogger("tokenclub.gateway")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PATH_LIMIT = 200


@dataclass
class RequestContext:
    """What one request's log line and headers need, filled in as the request goes."""

    request_id: str
    endpoint: str = ""
    key_prefix: str = "-"
    model: str = "-"
    outcome: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    settling: asyncio.Task[Any] | None = None


def context(state: Any) -> RequestContext:
    """The context of a request (`request.state`)."""
    ctx: RequestContext = state.ctx
    return ctx


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return {401: "unauthorized", 404: "not_found", 413: "too_large", 429: "limited"}.get(
        status, "rejected" if status < 500 else "failed"
    )


class RequestObserver:
    """Wraps the app: ids, headers, metrics and the access log for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ctx = RequestContext(uuid.uuid4().hex)
        scope.setdefault("state", {})["ctx"] = ctx
        status = 500
        sent_start = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                sent_start = True
                status = message["status"]
                extra = [(b"x-request-id", ctx.request_id.encode())]
                extra += [(k.encode(), v.encode()) for k, v in ctx.headers.items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        metrics = self.metrics()
        metrics.in_flight += 1
        try:
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception as exc:
                log.error("request %s failed", ctx.request_id, exc_info=exc)
                if not sent_start:
                    response = error_response(
                        500,
                        f"internal error (request {ctx.request_id}); nothing was charged",
                        "server_error",
                        "internal_error",
                    )
                    await response(scope, receive, send_with_headers)
            if ctx.settling is not None:
                # The reply is sent; its usage is being settled: wait so the line can show it.
                await asyncio.wait([ctx.settling])
        finally:
            metrics.in_flight -= 1
        self._finish(scope, ctx, status, time.perf_counter() - started)

    def _finish(self, scope: Scope, ctx: RequestContext, status: int, elapsed: float) -> None:
        outcome = ctx.outcome or _outcome(status)
        if ctx.endpoint:
            metrics = self.metrics()
            metrics.requests.labels(ctx.endpoint, ctx.model, str(status), outcome).inc()
            metrics.latency.labels(ctx.endpoint, ctx.model).observe(elapsed)
        if not access_log.isEnabledFor(logging.INFO):
            return
        path = str(scope.get("path", ""))
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": ctx.request_id,
            "method": scope.get("method", ""),
            "path": path if len(path) <= PATH_LIMIT else path[:PATH_LIMIT] + "…",
            "status": status,
            "outcome": outcome,
            "key": ctx.key_prefix,
            "model": ctx.model,
            "prompt_tokens": ctx.prompt_tokens,
            "completion_tokens": ctx.completion_tokens,
            "latency_ms": round(elapsed * 1000, 1),
        }
        access_log.info(json.dumps(line, ensure_ascii=False))
