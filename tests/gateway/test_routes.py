"""What FastAPI does with the OpenAI endpoints before the gateway's own code runs."""

from __future__ import annotations

import inspect

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tokenclub.gateway.routes.openai_api import router


def _calls(dependant: Dependant) -> list[object]:
    return [call for sub in dependant.dependencies for call in (sub.call, *_calls(sub))]


def test_the_paid_endpoints_dependencies_run_on_the_event_loop() -> None:
    """FastAPI runs a plain-function dependency on a worker thread, a hop that costs about
    130 µs each way here: every dependency of the endpoints that hold and charge is a coroutine."""
    paid = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
    routes = [route for route in router.routes if isinstance(route, APIRoute) and route.path in paid]
    assert {route.path for route in routes} == paid
    for route in routes:
        calls = _calls(route.dependant)
        assert len(calls) == 2  # the endpoint's tag and the presented key
        assert all(inspect.iscoroutinefunction(call) for call in calls), route.path
