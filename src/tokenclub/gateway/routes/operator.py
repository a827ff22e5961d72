"""The operator's endpoints: health, Prometheus metrics and the API docs.

With an operator token set (`TOKENCLUB_OPERATOR_TOKEN`), metrics and docs need it, and health
answers only `{"status": "ok"}` to anyone else (its detail names every model and the guard's
budgets); a browser opening the docs is asked for it (HTTP basic authentication, any user
name, the token as password). The docs page loads Swagger UI from the `fastapi-offline`
package's copy, served here, so it works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select

from tokenclub.gateway.auth import is_operator, operator

router = APIRouter(tags=["Operator"])
ASSETS = "/docs/assets"


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Whether the database answers; the models and the guard's state for the operator."""
    gateway = request.app.state.gateway
    await gateway.in_db(lambda session: session.execute(select(1)).scalar())
    if not is_operator(request):
        return {"status": "ok"}
    config = gateway.config
    guard = config.guard.health() if config.guard else {"status": "off"}
    return {"status": "ok", "models": sorted(config.routes), "guard": guard}


@router.get("/metrics", dependencies=[Depends(operator)])
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this worker."""
    return Response(
        generate_latest(request.app.state.gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/openapi.json", dependencies=[Depends(operator)], include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", dependencies=[Depends(operator)], include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="tokenclub gateway",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


def swagger_assets() -> StaticFiles:
    """Swagger UI's script and style, from the installed `fastapi-offline` package."""
    return StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static")
