"""The ASGI app: OpenAI-compatible endpoints in front of the upstreams, paid through the ledger.

`create_app` only assembles: the shared `Gateway` state (service.py), the paid-request flow
(completion.py), the routes (routes/), OpenAI-shaped errors (errors.py) and the per-request
ids, headers, metrics and access log (observe.py).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tokenclub.gateway.completion import Completions
from tokenclub.gateway.errors import install_error_handlers
from tokenclub.gateway.observe import RequestObserver
from tokenclub.gateway.routes import account, openai_api, operator
from tokenclub.gateway.service import Admitted, Gateway, GatewayConfig

__all__ = ["Admitted", "Gateway", "GatewayConfig", "create_app"]
SWEEP_INTERVAL_S = 60.0


def create_app(config: GatewayConfig) -> FastAPI:
    gateway = Gateway(config)

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        await gateway.sweep()
        guard = config.guard

        async def warm() -> None:
            if guard is not None:  # its reading tables load beside the first requests, not in them
                await asyncio.to_thread(guard.warm)
            # What start-up built (imports, the guard's tables: some 320,000 tracked objects)
            # lives as long as the worker. Frozen, it is no longer traversed by every full
            # collection of the cyclic garbage collector, which took a third of the worker's CPU
            # under load (docs/gateway.md, "A batch's postings in one round trip; the garbage collector").
            gc.collect()
            gc.freeze()

        warming = served.state.warming = asyncio.create_task(warm())

        async def sweeper() -> None:
            while True:
                await asyncio.sleep(SWEEP_INTERVAL_S)
                await gateway.sweep()

        task = asyncio.create_task(sweeper())
        try:
            yield
        finally:
            task.cancel()
            await warming
            await gateway.drain()
            await gateway.upstream.aclose()
            gateway.db.dispose()

    app = FastAPI(
        title="tokenclub gateway",
        summary="OpenAI-compatible API metered through the tokenclub ledger and guarded against leaks",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gateway = gateway
    app.state.completions = Completions(gateway)
    install_error_handlers(app)
    app.include_router(openai_api.router)
    app.include_router(account.router)
    app.include_router(operator.router)
    app.mount(operator.ASSETS, operator.swagger_assets(), name="docs-assets")
    app.add_middleware(RequestObserver, metrics=lambda: gateway.metrics)
    return app
