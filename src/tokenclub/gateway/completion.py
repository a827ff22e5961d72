"""One paid request from body to settled charge: chat completions, completions, embeddings.

Per request: parse and bound it; check the prompt with the guard; admit (key, rate limit, hold:
one database transaction); call the upstream; guard the reply; settle the hold with the exact
usage (a second transaction) or release it when nothing was delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from tokenclub.accounts.keys import KeyView, authenticate
from tokenclub.gateway import billing
from tokenclub.gateway.billing import QuotaExceededError, RequestInfo, Usage
from tokenclub.gateway.body import json_body
from tokenclub.gateway.errors import ApiError, shorten
from tokenclub.gateway.event_stream import EventStream
from tokenclub.gateway.formats import EMBEDDINGS, SSE_DONE, ApiFormat, sse, usage_dict, usage_from
from tokenclub.gateway.metering import counted_usage
from tokenclub.gateway.observe import RequestContext, context
from tokenclub.gateway.ratelimit import RateLimitedError
from tokenclub.gateway.requests import ParsedRequest, parse_request
from tokenclub.gateway.service import Admitted, Gateway, Tally, rate_limited
from tokenclub.gateway.streaming import ReplyStream
from tokenclub.gateway.upstream import ModelRoute, UpstreamError
from tokenclub.gateway.usage_estimate import estimate_usage
from tokenclub.guard.detection.fragments import Fragment
from tokenclub.guard.service import PASS, Decision, PromptCheck, close_stream, record

log = logging.getLogger("tokenclub.gateway")
REJECTED_BY_UPSTREAM = (400, 404, 405, 413, 415, 422, 501)


@dataclass(frozen=True, slots=True)
class Call:
    """A request past parsing: what every later step needs."""

    fmt: ApiFormat
    route: ModelRoute
    parsed: ParsedRequest
    ctx: RequestContext
    started: float

    def info(self, key: KeyView) -> RequestInfo:
        return RequestInfo(self.ctx.request_id, key.id, self.route.name, self.fmt.kind, self.parsed.stream)


class Completions:
    """The paid endpoints of one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config

    async def handle(self, request: Request, fmt: ApiFormat, secret: str) -> Response:
        ctx = context(request.state)
        started = time.perf_counter()
        body = await json_body(request, self.config.max_body_bytes)
        parsed = parse_request(body, fmt, self.config.default_max_tokens, self.config.max_tokens_ceiling)
        route = self.config.routes.get(parsed.model)
        if route is None:
            raise ApiError(
                404,
                f"model {shorten(parsed.model)} does not exist",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        ctx.model = route.name
        call = Call(fmt, route, parsed, ctx, started)
        guard = self.config.guard
        check = guard.check_prompt(parsed.prompt_text) if guard is not None and fmt.generates else PASS
        if check.refuse:
            await self._refuse(secret, call, check)
        admitted, check = await self._admit(secret, call, check)
        ctx.key_prefix = admitted.key.display_prefix
        if admitted.standing is not None:
            ctx.headers.update(admitted.standing.headers())
        info = call.info(admitted.key)
        if check.decisions:
            await self.gateway.record_guard(ctx.request_id, admitted.key, check.decisions)
        if check.refuse:  # the key's accumulated copying is past the budget
            ctx.outcome = "guard_refused"
            await self.gateway.release(admitted, info, "guard_accumulated", started)
            raise ApiError(400, check.message, "invalid_request_error", "content_filter")
        if parsed.stream:
            return await self._stream(call, admitted, info, check)
        return await self._whole(call, admitted, info, check)

    async def _admit(self, secret: str, call: Call, check: PromptCheck) -> tuple[Admitted, PromptCheck]:
        guard = self.config.guard
        watched = guard is not None and guard.watches_keys and call.fmt.generates

        def admit(session: Session) -> tuple[Admitted, PromptCheck]:
            # The key's tally is read in the admission's transaction: one unit of database work
            # (one thread hop, one slot in the group commit) instead of two.
            if guard is None or not watched:
                return self.gateway.admit(session, secret, call.parsed.worst_tokens), check
            admitted = self.gateway.admit(session, secret, call.parsed.worst_tokens, guard.admission_rider)
            return admitted, guard.with_tally(session, admitted.key, check, first=admitted.rider_values)

        lane = await self.gateway.lane_of(secret)
        try:
            # Not durable: the hold only reserves; the settlement's durable commit flushes it too
            # (docs/gateway.md, "Admissions skip the flush").
            return await self.gateway.in_db(admit, durable=False, lane=lane)
        except QuotaExceededError as exc:
            call.ctx.outcome = "insufficient_quota"
            await self.gateway.refuse_quota(secret, call.info)
            raise ApiError(429, str(exc), "insufficient_quota", "insufficient_quota") from exc

    async def _whole(self, call: Call, admitted: Admitted, info: RequestInfo, check: PromptCheck) -> Response:
        gateway, guard = self.gateway, self.config.guard
        try:
            data = await gateway.upstream.complete(call.route, call.fmt.path, call.parsed.body)
            used = usage_from(data) or await counted_usage(
                gateway.upstream, call.route, call.parsed, call.fmt.reply_texts(data)
            )
        except UpstreamError as exc:
            return await self._upstream_failed(call, admitted, info, exc)
        tally = None
        if guard is not None and call.fmt.generates:
            leak, fragments = guard.scan_reply(
                data, call.fmt.kind, check.strict, check.earlier, check.own_partner, check.exhausted
            )
            if leak is not None:
                call.ctx.outcome = "guard_" + leak.action
            copied: dict[int, int] = {}
            grams: dict[int, frozenset[int]] = {}
            if guard.watches_keys:
                copied = guard.reply_credits(data, call.fmt.kind, check.own_partner)
                grams = guard.reply_grams(data, call.fmt.kind, check.own_partner)
            if leak is not None or copied or fragments or grams or check.hold is not None:
                tally = self._tally(
                    call, admitted, [leak] if leak is not None else [], copied, fragments, grams, check.hold
                )
        # The guard's bookkeeping goes with the charge: one unit of database work.
        used = await self._settle(call, admitted, info, used, tally)
        data["model"] = call.route.name
        data["usage"] = usage_dict(used) if call.fmt.generates else _embedding_usage(used)
        return JSONResponse(data)

    def _tally(
        self,
        call: Call,
        admitted: Admitted,
        decisions: list[Decision],
        copied: dict[int, int],
        fragments: list[Fragment],
        grams: dict[int, frozenset[int]],
        hold: int | None,
    ) -> Tally:
        """The guard's bookkeeping of a delivered reply as a unit of database work: its
        decisions, and with accumulation or coverage on, the credits, fragments and grams of
        what was sent, and the request's coverage `hold` released (with the charge where it
        can be, `Tally.rider`); returns every decision it recorded (an operator alert for a
        document past its cap among them)."""
        guard = self.config.guard
        assert guard is not None

        def tally(session: Session, released: bool) -> list[Decision]:
            alerts: list[Decision] = []
            if guard.watches_keys:
                guard.keep(session, admitted.key, copied, fragments)
                alerts = guard.keep_coverage(session, admitted.key, grams, None if released else hold)
            recorded = decisions + alerts
            record(session, call.ctx.request_id, admitted.key, recorded)
            return recorded

        return Tally(tally, guard.hold_rider(hold) if hold is not None and guard.watches_keys else None)

    async def _settle(
        self,
        call: Call,
        admitted: Admitted,
        info: RequestInfo,
        used: Usage,
        tally: Tally | None = None,
    ) -> Usage:
        """Settle the hold (with the guard's `tally` in the same unit of work); the usage
        charged, which is never above the hold."""
        await self.gateway.settle(admitted, used, info, call.started, tally)
        charged = used.capped(admitted.hold.tokens)
        call.ctx.prompt_tokens, call.ctx.completion_tokens = charged.prompt_tokens, charged.completion_tokens
        return charged

    async def _refuse(self, secret: str, call: Call, check: PromptCheck) -> None:
        """An extraction attempt under the refuse policy: counted against the rate limit and
        recorded, never sent upstream, charged nothing."""
        limiter = self.config.limiter

        def work(session: Session) -> KeyView | None:
            key = authenticate(session, secret)
            if key is None:
                return None
            try:
                limiter.admit(session, key.id)
            except RateLimitedError as exc:
                raise rate_limited(exc) from exc
            assert check.decision is not None
            record(session, call.ctx.request_id, key, [check.decision])
            billing.record_failure(session, call.info(key), key.customer_id, "prompt_refused", 0)
            return key

        key = await self.gateway.in_db(work, lane=await self.gateway.lane_of(secret))
        if key is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        call.ctx.key_prefix, call.ctx.outcome = key.display_prefix, "guard_refused"
        self.gateway.metrics.guard.labels("prompt", "refused").inc()
        raise ApiError(400, check.message, "invalid_request_error", "content_filter")

    async def _upstream_failed(
        self, call: Call, admitted: Admitted, info: RequestInfo, exc: UpstreamError
    ) -> Response:
        """Release the hold and say why: the upstream refused the request (a 400 the client can
        act on), timed out (504) or failed (502)."""
        if exc.status in REJECTED_BY_UPSTREAM:
            call.ctx.outcome = "upstream_rejected"
            await self.gateway.release(admitted, info, "upstream_rejected", call.started)
            if call.fmt is EMBEDDINGS and exc.status in (404, 405, 501):
                raise ApiError(
                    400,
                    f"model {shorten(call.route.name)} does not offer embeddings",
                    "invalid_request_error",
                    "unsupported_endpoint",
                )
            raise ApiError(
                400,
                f"the model server refused the request; nothing was charged: {exc.detail}",
                "invalid_request_error",
                "upstream_rejected",
            )
        kind = "timeout" if exc.timeout else "error"
        call.ctx.outcome = f"upstream_{kind}"
        self.gateway.metrics.upstream_errors.labels(call.route.name, kind).inc()
        await self.gateway.release(admitted, info, f"upstream_{kind}", call.started)
        if exc.timeout:
            raise ApiError(
                504, "the model server timed out; nothing was charged", "timeout", "upstream_timeout"
            )
        raise ApiError(
            502, "the model server failed; nothing was charged", "upstream_error", "upstream_error"
        )

    async def _stream(
        self, call: Call, admitted: Admitted, info: RequestInfo, check: PromptCheck
    ) -> Response:
        gateway, owner = self.gateway, self.config.guard
        reply = ReplyStream(
            call.fmt,
            call.route.name,
            call.parsed.choices,
            owner,
            check.strict,
            check.earlier,
            check.own_partner,
            check.exhausted,
        )
        events = gateway.upstream.stream(call.route, call.fmt.path, call.parsed.body)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None
        except UpstreamError as exc:
            return await self._upstream_failed(call, admitted, info, exc)
        first_token = gateway.metrics.first_token.labels(call.route.name)

        async def body() -> AsyncGenerator[bytes, None]:
            failed = completed = False
            timed = False
            try:
                pending = [first] if first is not None else []
                while True:
                    if pending:
                        batch = pending.pop()
                    else:
                        try:
                            batch = await anext(events)
                        except StopAsyncIteration:
                            break
                    # What one read brought goes out in one write, up to a blocked event.
                    outs: list[dict[str, Any]] = []
                    for event in batch:
                        outs.extend(reply.feed(event))
                        if reply.blocked:
                            break
                    if outs:
                        if not timed:
                            first_token.observe(time.perf_counter() - call.started)
                            timed = True
                        yield b"".join(map(sse, outs))
                    if reply.blocked:
                        await close_stream(events)
                        break
                if finished := reply.finish():
                    yield b"".join(map(sse, finished))
                completed = True
            except UpstreamError as exc:
                failed = True
                kind = "timeout" if exc.timeout else "error"
                gateway.metrics.upstream_errors.labels(call.route.name, kind).inc()
                call.ctx.outcome = "upstream_broke"
                message = "the model server failed mid-stream; charged only for what was generated"
                yield sse(
                    {
                        "error": {
                            "message": message,
                            "type": "upstream_error",
                            "param": None,
                            "code": f"upstream_{kind}",
                        }
                    }
                )
            finally:
                tally = self._after_stream(call, admitted, reply, check.hold)
                if tally is not None and (reply.reported is None or (failed and not any(reply.generated()))):
                    # No settlement, or one that first counts the reply upstream: the tally
                    # (which frees the request's coverage hold) goes now, on its own.
                    lane = admitted.key.customer_id
                    gateway.spawn(gateway.in_db(tally.alone, durable=False, lane=lane))
                    tally = None
                if not completed:
                    # The client went away or the upstream broke: charge what was generated.
                    if failed and not any(reply.generated()):
                        gateway.spawn(gateway.release(admitted, info, "upstream_error", call.started))
                    else:
                        charge = self._settle_stream(call, admitted, info, reply, tally)
                        call.ctx.settling = gateway.spawn(charge)
            if completed:
                settling = gateway.spawn(self._settle_stream(call, admitted, info, reply, tally))
                call.ctx.settling = settling
                if call.parsed.include_usage:
                    final = await asyncio.shield(settling)
                    if final is not None:
                        usage = call.fmt.usage_chunk(reply.last_id, call.route.name, final)
                        yield sse(usage) + SSE_DONE
                        return
            yield SSE_DONE

        return EventStream(body())

    def _after_stream(
        self, call: Call, admitted: Admitted, reply: ReplyStream, hold: int | None
    ) -> Tally | None:
        """The guard's bookkeeping of a finished stream (see `_tally`), or None when there is
        nothing to keep."""
        owner = self.config.guard
        decisions = reply.decisions()
        if decisions:
            call.ctx.outcome = "guard_" + decisions[0].action
        copied: dict[int, int] = {}
        fragments: list[Fragment] = []
        grams: dict[int, frozenset[int]] = {}
        if owner is not None and owner.watches_keys:
            copied, fragments, grams = reply.credits(), reply.fragments(), reply.grams()
        if owner is None or not (decisions or copied or fragments or grams or hold is not None):
            return None
        return self._tally(call, admitted, decisions, copied, fragments, grams, hold)

    async def _settle_stream(
        self,
        call: Call,
        admitted: Admitted,
        info: RequestInfo,
        reply: ReplyStream,
        tally: Tally | None,
    ) -> Usage | None:
        try:
            used = reply.reported or await counted_usage(
                self.gateway.upstream, call.route, call.parsed, reply.generated()
            )
        except UpstreamError as exc:
            # The text was delivered but cannot be counted exactly: settle at once on the
            # pinned-tokenizer estimate (gateway/usage_estimate.py), capped by the hold.
            log.warning(
                "request %s: usage could not be counted, charged on the estimate: %s", info.request_id, exc
            )
            used = await asyncio.to_thread(estimate_usage, call.parsed.prompt_text, reply.generated())
            self.gateway.metrics.estimated.labels(call.route.name).inc()
        return await self._settle(call, admitted, info, used, tally)


def _embedding_usage(used: Usage) -> dict[str, int]:
    return {"prompt_tokens": used.prompt_tokens, "total_tokens": used.prompt_tokens}
