"""Building the gateway's configuration from settings (used by `tokenclub serve` and its workers)."""

from __future__ import annotations

import json
from datetime import timedelta

from tokenclub.errors import InvalidInputError
from tokenclub.gateway.app import GatewayConfig
from tokenclub.gateway.guard import GatewayGuard
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits, RateLimiter, RedisRateLimiter
from tokenclub.gateway.upstream import ModelRoute
from tokenclub.ledger.pricing import PriceList
from tokenclub.settings import Settings


def parse_routes(default_url: str, default_model: str, extra_json: str) -> dict[str, ModelRoute]:
    """The default model at `default_url` (under the same name upstream), plus `TOKENCLUB_MODELS`."""
    routes = {default_model: ModelRoute(default_model, default_url.rstrip("/"), default_model)}
    if not extra_json.strip():
        return routes
    try:
        extra = json.loads(extra_json)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"TOKENCLUB_MODELS is not valid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise InvalidInputError("TOKENCLUB_MODELS must be a JSON object of model name -> {url, model}")
    for name, spec in extra.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise InvalidInputError(f"TOKENCLUB_MODELS[{name!r}] needs a url")
        routes[name] = ModelRoute(
            name, spec["url"].rstrip("/"), str(spec.get("model", name)), spec.get("api_key")
        )
    return routes


def gateway_config(settings: Settings, upstream_url: str, model_name: str) -> GatewayConfig:
    limits = Limits(settings.rate_limit_rpm, settings.rate_limit_tpm)
    limiter: RateLimiter = (
        RedisRateLimiter(limits, settings.redis_url) if settings.redis_url else DatabaseRateLimiter(limits)
    )
    return GatewayConfig(
        database_url=settings.resolved_database_url,
        routes=parse_routes(upstream_url, model_name, settings.models),
        prices=PriceList(settings.price_input_krw_per_mtok, settings.price_output_krw_per_mtok),
        limiter=limiter,
        default_max_tokens=settings.default_max_tokens,
        hold_ttl=timedelta(seconds=settings.hold_ttl_s),
        upstream_timeout_s=settings.upstream_timeout_s,
        guard=GatewayGuard.from_settings(settings.home),
    )
