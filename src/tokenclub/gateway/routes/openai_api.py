"""The OpenAI-compatible endpoints: chat completions, completions, embeddings, models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from tokenclub.accounts.keys import KeyView
from tokenclub.gateway import schemas
from tokenclub.gateway.auth import bearer, current_key
from tokenclub.gateway.completion import Completions
from tokenclub.gateway.errors import ApiError, shorten
from tokenclub.gateway.formats import CHAT, COMPLETIONS, EMBEDDINGS
from tokenclub.gateway.observe import context

router = APIRouter(prefix="/v1", tags=["OpenAI API"])


def _completions(request: Request) -> Completions:
    completions: Completions = request.app.state.completions
    return completions


def _endpoint(kind: str) -> Any:
    """A dependency naming the endpoint in the request's metrics before anything can refuse it
    (a coroutine, so that it runs on the event loop, not on a worker thread: `auth.bearer`)."""

    async def tag(request: Request) -> None:
        context(request.state).endpoint = kind

    return Depends(tag)


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tokenclub"}


@router.post("/chat/completions", openapi_extra=schemas.CHAT, dependencies=[_endpoint("chat")])
async def chat(request: Request, secret: str = Depends(bearer)) -> Response:
    """OpenAI chat completions: messages (tool calls, tool results, content parts), `n`,
    `stream`, `tools`; held before the upstream is called and charged its exact usage."""
    return await _completions(request).handle(request, CHAT, secret)


@router.post("/completions", openapi_extra=schemas.COMPLETIONS, dependencies=[_endpoint("completions")])
async def completions(request: Request, secret: str = Depends(bearer)) -> Response:
    """OpenAI (legacy) completions: a prompt or a list of prompts, `n`, `stream`."""
    return await _completions(request).handle(request, COMPLETIONS, secret)


@router.post("/embeddings", openapi_extra=schemas.EMBEDDINGS, dependencies=[_endpoint("embeddings")])
async def embeddings(request: Request, secret: str = Depends(bearer)) -> Response:
    """OpenAI embeddings, forwarded to upstreams that serve them; input tokens are charged."""
    return await _completions(request).handle(request, EMBEDDINGS, secret)


@router.get("/models")
async def models(request: Request, key: KeyView = Depends(current_key)) -> dict[str, Any]:
    """The served models."""
    context(request.state).key_prefix = key.display_prefix
    routes = _completions(request).config.routes
    return {"object": "list", "data": [_model(name) for name in sorted(routes)]}


@router.get("/models/{model:path}")
async def model(model: str, request: Request, key: KeyView = Depends(current_key)) -> dict[str, Any]:
    """One served model; 404 `model_not_found` for any other name."""
    context(request.state).key_prefix = key.display_prefix
    if model not in _completions(request).config.routes:
        raise ApiError(
            404,
            f"model {shorten(model)} does not exist",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    return _model(model)
