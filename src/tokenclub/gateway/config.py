"""Building the gateway's configuration from settings (used by `tokenclub serve` and its workers)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import httpx

from tokenclub.errors import InvalidInputError
from tokenclub.gateway.app import GatewayConfig
from tokenclub.gateway.ratelimit import DatabaseRateLimiter, Limits, RateLimiter, RedisRateLimiter
from tokenclub.gateway.upstream import ModelRoute, UpstreamError, model_ids
from tokenclub.guard.service import GatewayGuard
from tokenclub.ledger.pricing import PriceList
from tokenclub.settings import Settings

log = logging.getLogger("tokenclub.gateway")
DISCOVERY_TIMEOUT_S = 10.0


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


def discover_routes(url: str) -> dict[str, ModelRoute]:
    """Every model an upstream lists (`GET /models`), served under its own name."""
    base = url.rstrip("/")
    try:
        answer = httpx.get(base + "/models", timeout=DISCOVERY_TIMEOUT_S)
        answer.raise_for_status()
        names = model_ids(answer.content)
    except (httpx.HTTPError, UpstreamError) as exc:
        raise InvalidInputError(f"cannot list the models of {base}: {exc}") from exc
    if not names:
        raise InvalidInputError(f"{base}/models lists no models")
    return {name: ModelRoute(name, base, name) for name in names}


def served_routes(settings: Settings, upstream_url: str, model_name: str) -> dict[str, ModelRoute]:
    """Without a model map or a model name, the names the upstream itself lists (when it
    cannot list them, the default name, with a warning); else the named model and the map."""
    if not settings.models.strip() and "model_name" not in settings.model_fields_set:
        try:
            return discover_routes(upstream_url)
        except InvalidInputError as exc:
            log.warning("%s; serving it as %r", exc, model_name)
    return parse_routes(upstream_url, model_name, settings.models)


def gateway_config(settings: Settings, upstream_url: str, model_name: str) -> GatewayConfig:
    limits = Limits(settings.rate_limit_rpm, settings.rate_limit_tpm)
    limiter: RateLimiter = (
        RedisRateLimiter(limits, settings.redis_url) if settings.redis_url else DatabaseRateLimiter(limits)
    )
    return GatewayConfig(
        database_url=settings.resolved_database_url,
        routes=served_routes(settings, upstream_url, model_name),
        prices=PriceList(settings.price_input_krw_per_mtok, settings.price_output_krw_per_mtok),
        limiter=limiter,
        default_max_tokens=settings.default_max_tokens,
        hold_ttl=timedelta(seconds=settings.hold_ttl_s),
        upstream_timeout_s=settings.upstream_timeout_s,
        guard=GatewayGuard.from_settings(settings.home),
        operator_token=settings.operator_token,
        max_body_bytes=settings.max_body_bytes,
    )
