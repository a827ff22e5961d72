"""The ASGI app: OpenAI-compatible endpoints in front of the upstreams, paid through the ledger.

Per request: authenticate the key, count it against the rate limit and place a hold (one
database transaction); call the upstream; settle the hold with the exact usage (a second
transaction). Database work runs in a thread so the event loop keeps streaming.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView, authenticate
from tokenclub.db.engine import Database
from tokenclub.db.schema import Customer, UsageEvent
from tokenclub.db.types import utcnow
from tokenclub.gateway import billing
from tokenclub.gateway.auth import active_key
from tokenclub.gateway.billing import QuotaExceededError, RequestInfo, Usage
from tokenclub.gateway.dbwork import DatabaseWork
from tokenclub.gateway.errors import ApiError, bad_request
from tokenclub.gateway.guard import (
    PASS,
    Decision,
    GatewayGuard,
    PromptCheck,
    StreamGuard,
    close_stream,
    partner_stats,
    record,
)
from tokenclub.gateway.metering import counted_usage, usage_from
from tokenclub.gateway.pricing import PriceList
from tokenclub.gateway.ratelimit import RateLimitedError, RateLimiter
from tokenclub.gateway.requests import ParsedRequest, parse_request
from tokenclub.gateway.upstream import ModelRoute, Upstream, UpstreamError
from tokenclub.gateway.usage import usage_event_dict
from tokenclub.guard.fragments import Fragment

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")
PATHS = {"chat": "/chat/completions", "completions": "/completions"}
SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str
    routes: dict[str, ModelRoute]
    prices: PriceList
    limiter: RateLimiter
    default_max_tokens: int = 512
    max_tokens_ceiling: int = 4096
    hold_ttl: timedelta = timedelta(minutes=15)
    upstream_timeout_s: float = 120.0
    guard: GatewayGuard | None = None


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "tokenclub_requests",
            "API requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.tokens = Counter("tokenclub_tokens", "Metered tokens by kind", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "tokenclub_request_seconds", "Request latency", ["endpoint"], registry=self.registry
        )
        self.upstream_errors = Counter(
            "tokenclub_upstream_errors", "Upstream failures", ["kind"], registry=self.registry
        )
        self.guard = Counter(
            "tokenclub_guard_events", "Leak guard decisions", ["stage", "action"], registry=self.registry
        )


@dataclass(frozen=True, slots=True)
class Admitted:
    key: KeyView
    hold_id: str


class Gateway:
    """Shared state of one worker process: database, upstream client, limiter, metrics."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.db = Database(config.database_url)
        self.upstream = Upstream(config.routes, config.upstream_timeout_s)
        self.metrics = Metrics()
        self.work = DatabaseWork(self.db)
        self._background: set[asyncio.Task[Any]] = set()

    async def in_db(self, work: Callable[[Session], T]) -> T:
        """Run a unit of work off the event loop; its result once it is committed."""
        return await self.work.run(work)

    def admit(self, session: Session, secret: str, worst_tokens: int) -> Admitted:
        key = active_key(session.connection(), secret)
        if key is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        try:
            self.config.limiter.admit(session, key.id)
        except RateLimitedError as exc:
            raise ApiError(429, str(exc), "requests", "rate_limit_exceeded", exc.retry_after) from exc
        hold = billing.place_hold(
            session, key.customer_id, key.id, worst_tokens, self.config.prices, self.config.hold_ttl
        )
        return Admitted(key, hold.id)

    async def refuse_quota(self, secret: str, info_of: Callable[[KeyView], RequestInfo]) -> None:
        def record(session: Session) -> None:
            key = authenticate(session, secret)
            if key is not None:
                billing.record_failure(session, info_of(key), key.customer_id, "insufficient_quota", 0)

        await self.in_db(record)

    async def settle(self, admitted: Admitted, usage: Usage, info: RequestInfo, started: float) -> None:
        latency = int((time.perf_counter() - started) * 1000)

        def work(session: Session) -> None:
            # The rate counter first, as in admission: one lock order, no deadlocks.
            self.config.limiter.add_tokens(
                session, admitted.key.id, usage.prompt_tokens + usage.completion_tokens
            )
            billing.settle_hold(session, admitted.hold_id, usage, self.config.prices, info, latency)

        await self.in_db(work)
        self.metrics.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels("completion").inc(usage.completion_tokens)

    async def release(self, admitted: Admitted, info: RequestInfo, status: str, started: float) -> None:
        latency = int((time.perf_counter() - started) * 1000)

        def work(session: Session) -> None:
            if billing.release_hold(session, admitted.hold_id):
                billing.record_failure(session, info, admitted.key.customer_id, status, latency)

        await self.in_db(work)

    def spawn(self, coro: Coroutine[Any, Any, U]) -> asyncio.Task[U]:
        """Run work that must finish even if the client went away (settling a cut stream)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def sweep(self) -> int:
        """Release holds left by a crashed worker; returns how many were released."""

        def work(session: Session) -> int:
            stale = billing.stale_holds(session, utcnow())
            return sum(billing.release_hold(session, hold_id, "expired") for hold_id in stale)

        return await self.in_db(work)

    async def record_guard(self, request_id: str, key: KeyView, decisions: list[Decision]) -> None:
        await self.in_db(lambda session: record(session, request_id, key, decisions))
        for decision in decisions:
            self.metrics.guard.labels(decision.stage, decision.action).inc()

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing API key: send Authorization: Bearer <key>",
            "invalid_request_error",
            "invalid_api_key",
        )
    return token.strip()


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _delta_text(event: dict[str, Any], endpoint: str) -> str:
    parts = []
    for choice in event.get("choices") or ():
        content = (choice.get("delta") or {}).get("content") if endpoint == "chat" else choice.get("text")
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)


def create_app(config: GatewayConfig) -> FastAPI:
    gateway = Gateway(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.sweep()

        async def sweeper() -> None:
            while True:
                await asyncio.sleep(SWEEP_INTERVAL_S)
                await gateway.sweep()

        task = asyncio.create_task(sweeper())
        try:
            yield
        finally:
            task.cancel()
            await gateway.drain()
            await gateway.upstream.aclose()
            gateway.db.dispose()

    app = FastAPI(title="tokenclub gateway", lifespan=lifespan)
    app.state.gateway = gateway

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        await gateway.in_db(lambda session: session.execute(select(1)).scalar())
        guard = config.guard.health() if config.guard else {"status": "off"}
        return {"status": "ok", "models": sorted(config.routes), "guard": guard}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        secret = _bearer(request)
        if await gateway.in_db(lambda session: authenticate(session, secret)) is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "tokenclub"}
                for name in sorted(config.routes)
            ],
        }

    @app.get("/v1/usage")
    async def usage(request: Request, limit: int = 100) -> dict[str, Any]:
        secret = _bearer(request)

        def read(session: Session) -> list[dict[str, Any]] | None:
            key = authenticate(session, secret)
            if key is None:
                return None
            rows = session.scalars(
                select(UsageEvent)
                .where(UsageEvent.customer_id == key.customer_id)
                .order_by(UsageEvent.id.desc())
                .limit(max(1, min(limit, 1000)))
            )
            return [usage_event_dict(row) for row in rows]

        events = await gateway.in_db(read)
        if events is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        return {"object": "list", "data": events}

    @app.get("/v1/guard/stats")
    async def guard_stats(request: Request) -> dict[str, Any]:
        """A partner's own count of stopped attempts on its text; other keys get 403."""
        secret = _bearer(request)

        def read(session: Session) -> dict[str, Any] | None:
            key = authenticate(session, secret)
            if key is None:
                return None
            partner_id = session.scalar(select(Customer.partner_id).where(Customer.id == key.customer_id))
            if partner_id is None:
                raise ApiError(
                    403, "guard statistics are for partners' keys", "invalid_request_error", "not_a_partner"
                )
            return partner_stats(session, partner_id)

        stats = await gateway.in_db(read)
        if stats is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        return stats

    async def handle(request: Request, endpoint: str) -> Response:
        started = time.perf_counter()
        status = "error"
        try:
            response = await _handle(request, endpoint, started)
            status = str(response.status_code)
            return response
        except ApiError as exc:
            status = str(exc.status)
            raise
        finally:
            gateway.metrics.requests.labels(endpoint, status).inc()
            gateway.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _handle(request: Request, endpoint: str, started: float) -> Response:
        secret = _bearer(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request("request body is not valid JSON") from exc
        parsed = parse_request(body, endpoint, config.default_max_tokens, config.max_tokens_ceiling)
        route = config.routes.get(parsed.model)
        if route is None:
            raise ApiError(
                404, f"model {parsed.model!r} does not exist", "invalid_request_error", "model_not_found"
            )
        request_id = uuid.uuid4().hex

        def info_of(key: KeyView) -> RequestInfo:
            return RequestInfo(request_id, key.id, route.name, endpoint, parsed.stream)

        check = config.guard.check_prompt(parsed.prompt_text) if config.guard else PASS
        if check.refuse:
            await _refuse(secret, info_of, check)
        guard = config.guard
        watched = guard is not None and guard.watches_keys

        def admit(session: Session) -> tuple[Admitted, PromptCheck]:
            # The key's tally is read in the admission's transaction: one unit of database work
            # (one thread hop, one slot in the group commit) instead of two.
            admitted = gateway.admit(session, secret, parsed.worst_tokens)
            if guard is not None and watched:
                return admitted, guard.with_tally(session, admitted.key, check)
            return admitted, check

        try:
            admitted, check = await gateway.in_db(admit)
        except QuotaExceededError as exc:
            await gateway.refuse_quota(secret, info_of)
            raise ApiError(429, str(exc), "insufficient_quota", "insufficient_quota") from exc
        info = info_of(admitted.key)
        if check.decisions:
            await gateway.record_guard(request_id, admitted.key, check.decisions)
        if check.refuse:  # the key's accumulated copying is past the budget
            await gateway.release(admitted, info, "guard_accumulated", started)
            raise ApiError(400, check.message, "invalid_request_error", "content_filter")
        if parsed.stream:
            return await _stream(route, endpoint, parsed, admitted, info, started, check)
        try:
            data = await gateway.upstream.complete(route, PATHS[endpoint], parsed.body)
            used = usage_from(data) or await counted_usage(
                gateway.upstream, route, endpoint, parsed, _reply_text(data, endpoint)
            )
        except UpstreamError as exc:
            return await _upstream_failed(admitted, info, started, exc)
        await gateway.settle(admitted, used, info, started)
        fragments: list[Fragment] = []
        if guard is not None:
            leak, fragments = guard.scan_reply(data, endpoint, check.strict, check.earlier, check.own_partner)
            if leak is not None:
                await gateway.record_guard(request_id, admitted.key, [leak])
        if guard is not None and watched:
            copied = guard.reply_credits(data, endpoint, check.own_partner)
            if copied or fragments:
                await gateway.in_db(lambda session: guard.keep(session, admitted.key, copied, fragments))
        data["model"] = route.name
        data["usage"] = {
            "prompt_tokens": used.prompt_tokens,
            "completion_tokens": used.completion_tokens,
            "total_tokens": used.prompt_tokens + used.completion_tokens,
        }
        return JSONResponse(data)

    async def _refuse(secret: str, info_of: Callable[[KeyView], RequestInfo], check: PromptCheck) -> None:
        """An extraction attempt under the refuse policy: counted against the rate limit and
        recorded, never sent upstream, charged nothing."""

        def work(session: Session) -> KeyView | None:
            key = authenticate(session, secret)
            if key is None:
                return None
            try:
                config.limiter.admit(session, key.id)
            except RateLimitedError as exc:
                raise ApiError(429, str(exc), "requests", "rate_limit_exceeded", exc.retry_after) from exc
            assert check.decision is not None
            record(session, info_of(key).request_id, key, [check.decision])
            billing.record_failure(session, info_of(key), key.customer_id, "prompt_refused", 0)
            return key

        if await gateway.in_db(work) is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        gateway.metrics.guard.labels("prompt", "refused").inc()
        raise ApiError(400, check.message, "invalid_request_error", "content_filter")

    async def _upstream_failed(
        admitted: Admitted, info: RequestInfo, started: float, exc: UpstreamError
    ) -> Response:
        kind = "timeout" if exc.timeout else "error"
        gateway.metrics.upstream_errors.labels(kind).inc()
        await gateway.release(admitted, info, f"upstream_{kind}", started)
        if exc.timeout:
            raise ApiError(
                504, "the model server timed out; nothing was charged", "timeout", "upstream_timeout"
            )
        raise ApiError(
            502, "the model server failed; nothing was charged", "upstream_error", "upstream_error"
        )

    def _keep_streamed(owner: GatewayGuard, guard: StreamGuard, key: KeyView) -> None:
        """After a stream: the credits and fragments of what it sent, kept for the window."""
        fragments = guard.fragments()
        copied = guard.credits()
        if copied or fragments:
            gateway.spawn(gateway.in_db(lambda session: owner.keep(session, key, copied, fragments)))

    async def _stream(
        route: ModelRoute,
        endpoint: str,
        parsed: ParsedRequest,
        admitted: Admitted,
        info: RequestInfo,
        started: float,
        check: PromptCheck,
    ) -> Response:
        owner = config.guard
        guard = owner.stream(endpoint, check.strict, check.earlier, check.own_partner) if owner else None
        events = gateway.upstream.stream(route, PATHS[endpoint], parsed.body)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None
        except UpstreamError as exc:
            return await _upstream_failed(admitted, info, started, exc)

        async def body() -> AsyncIterator[bytes]:
            generated: list[str] = []
            reported: Usage | None = None
            last_id = ""
            failed = False
            completed = False
            try:
                pending = [first] if first is not None else []
                while True:
                    if pending:
                        event = pending.pop()
                    else:
                        try:
                            event = await anext(events)
                        except StopAsyncIteration:
                            break
                    last_id = str(event.get("id", last_id))
                    reported = usage_from(event) or reported
                    if not event.get("choices"):
                        continue
                    generated.append(_delta_text(event, endpoint))
                    event["model"] = route.name
                    if guard is None:
                        yield _sse(event)
                        continue
                    for out in guard.filter(event):
                        yield _sse(out)
                    if guard.blocked:
                        await close_stream(events)
                        break
                for out in guard.finish() if guard else ():
                    yield _sse(out)
                completed = True
            except UpstreamError as exc:
                failed = True
                gateway.metrics.upstream_errors.labels("timeout" if exc.timeout else "error").inc()
                yield _sse(
                    {"error": {"message": "the model server failed mid-stream", "type": "upstream_error"}}
                )
            finally:
                if guard is not None and (leak := guard.decision()) is not None:
                    gateway.spawn(gateway.record_guard(info.request_id, admitted.key, [leak]))
                if guard is not None and owner is not None and owner.watches_keys:
                    _keep_streamed(owner, guard, admitted.key)
                if not completed:
                    # The client went away or the upstream broke: charge what was generated.
                    text = "".join(generated)
                    if failed and not text:
                        gateway.spawn(gateway.release(admitted, info, "upstream_error", started))
                    else:
                        gateway.spawn(
                            _settle_stream(route, endpoint, parsed, admitted, info, started, text, reported)
                        )
            if completed:
                settling = gateway.spawn(
                    _settle_stream(
                        route, endpoint, parsed, admitted, info, started, "".join(generated), reported
                    )
                )
                if parsed.include_usage:
                    final = await asyncio.shield(settling)
                    if final is not None:
                        yield _sse(_usage_chunk(last_id, endpoint, route.name, final))
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def _settle_stream(
        route: ModelRoute,
        endpoint: str,
        parsed: ParsedRequest,
        admitted: Admitted,
        info: RequestInfo,
        started: float,
        generated: str,
        reported: Usage | None,
    ) -> Usage | None:
        try:
            used = reported or await counted_usage(gateway.upstream, route, endpoint, parsed, generated)
        except UpstreamError as exc:
            # The text was delivered but cannot be counted now: the hold stays and the sweep
            # releases it, so the customer is never charged an invented amount.
            log.warning(
                "request %s: usage could not be counted, hold left to expire: %s", info.request_id, exc
            )
            return None
        await gateway.settle(admitted, used, info, started)
        return used

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, "completions")

    return app


def _reply_text(data: dict[str, Any], endpoint: str) -> str:
    choices = data.get("choices") or [{}]
    if endpoint == "chat":
        return str((choices[0].get("message") or {}).get("content") or "")
    return str(choices[0].get("text") or "")


def _usage_chunk(chunk_id: str, endpoint: str, model: str, usage: Usage) -> dict[str, Any]:
    """The final chunk a client asking for `stream_options.include_usage` expects."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk" if endpoint == "chat" else "text_completion",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        },
    }
