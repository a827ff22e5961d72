"""Prometheus metrics of one gateway worker.

Labels stay bounded: `model` is a served model's name (or "-" before one is known, so an
unknown name a client sends never becomes a label), `outcome` one of a fixed set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tokenclub.gateway.billing import Charge

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    in_flight: int = 0
    """HTTP requests this worker is serving now (`observe.RequestObserver` counts them)."""

    def __post_init__(self) -> None:
        self.in_progress = Gauge(
            "tokenclub_requests_in_progress", "HTTP requests being served", registry=self.registry
        )
        self.in_progress.set_function(lambda: self.in_flight)
        self.requests = Counter(
            "tokenclub_requests",
            "API requests by endpoint, model, HTTP status and outcome",
            ["endpoint", "model", "status", "outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "tokenclub_tokens",
            "Metered tokens by kind (prompt, completion), model and charge (free, paid)",
            ["kind", "model", "charge"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tokenclub_request_seconds", "Request latency", ["endpoint", "model"], registry=self.registry
        )
        self.first_token = Histogram(
            "tokenclub_time_to_first_token_seconds",
            "Time from the request to the first streamed event sent to the client",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "tokenclub_upstream_errors", "Upstream failures", ["model", "kind"], registry=self.registry
        )
        self.guard = Counter(
            "tokenclub_guard_events", "Leak guard decisions", ["stage", "action"], registry=self.registry
        )
        self.usage_anomalies = Counter(
            "tokenclub_upstream_usage_anomalies",
            "Upstream replies that reported more usage than the hold; charged at the hold",
            ["model"],
            registry=self.registry,
        )
        self.estimated = Counter(
            "tokenclub_estimated_usage",
            "Cut streams charged on the pinned-tokenizer estimate (no exact count possible)",
            ["model"],
            registry=self.registry,
        )

    def alone(self) -> bool:
        """Whether at most one request is being served: its database work need not wait for a
        batch (`gateway/dbwork.py`)."""
        return self.in_flight <= 1

    def charged(self, model: str, charge: Charge) -> None:
        """Count a settled request's tokens, free and paid apart, and a usage anomaly."""
        if charge.capped:
            self.usage_anomalies.labels(model).inc()
        for kind, charge_kind, tokens in (
            ("prompt", "free", charge.free_prompt_tokens),
            ("prompt", "paid", charge.paid_prompt_tokens),
            ("completion", "free", charge.free_completion_tokens),
            ("completion", "paid", charge.paid_completion_tokens),
        ):
            if tokens:
                self.tokens.labels(kind, model, charge_kind).inc(tokens)
