"""Talking to an OpenAI-compatible upstream (llama.cpp, vLLM, TGI, Ollama, a hosted API).

Models are mapped by name to an upstream URL and the model name the upstream knows. When an
upstream streams without a usage chunk (llama.cpp's server does), tokens are counted with the
upstream's own tokenizer through its tokenize endpoint, so a streamed reply costs exactly
what the same reply costs unstreamed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


class UpstreamError(Exception):
    """The upstream failed or timed out; the request is charged nothing."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A model as clients name it, and where it is served."""

    name: str
    base_url: str
    upstream_model: str
    api_key: str | None = None

    @property
    def server_root(self) -> str:
        """llama.cpp serves its tokenizer beside, not under, the OpenAI `/v1` prefix."""
        return self.base_url.removesuffix("/v1")


class Upstream:
    """One shared HTTP client for all upstream calls (connection pooling, keep-alive)."""

    def __init__(self, routes: dict[str, ModelRoute], timeout_s: float = 120.0) -> None:
        self.routes = routes
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _headers(self, route: ModelRoute) -> dict[str, str]:
        return {"Authorization": f"Bearer {route.api_key}"} if route.api_key else {}

    def _body(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": route.upstream_model}

    async def complete(
        self, route: ModelRoute, path: str, body: dict[str, Any], *, root: bool = False
    ) -> dict[str, Any]:
        """A non-streamed call (under `/v1`, or under the server root); raises UpstreamError."""
        url = (route.server_root if root else route.base_url) + path
        try:
            response = await self.client.post(url, json=self._body(route, body), headers=self._headers(route))
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"upstream timed out: {exc!r}", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"upstream answered {response.status_code}: {response.text[:200]}")
        try:
            data: dict[str, Any] = response.json()
        except json.JSONDecodeError as exc:
            raise UpstreamError("upstream answered with invalid JSON") from exc
        return data

    async def stream(
        self, route: ModelRoute, path: str, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Parsed server-sent event payloads until `[DONE]`."""
        request = self.client.build_request(
            "POST", route.base_url + path, json=self._body(route, body), headers=self._headers(route)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"upstream timed out: {exc!r}", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {exc!r}") from exc
        try:
            if response.status_code >= 400:
                text = (await response.aread()).decode(errors="replace")
                raise UpstreamError(f"upstream answered {response.status_code}: {text[:200]}")
            done = False
            async for line in response.aiter_lines():
                # After [DONE] the rest of the body is still read, so the connection goes back
                # to the pool instead of being thrown away.
                if done or not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    continue
                try:
                    yield json.loads(payload)
                except json.JSONDecodeError as exc:
                    raise UpstreamError("upstream sent an invalid stream event") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"upstream timed out mid-stream: {exc!r}", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream broke off mid-stream: {exc!r}") from exc
        finally:
            await response.aclose()

    async def count_tokens(self, route: ModelRoute, text: str) -> int:
        """Tokens of `text` in the served model's own tokenizer (llama.cpp's tokenize endpoint)."""
        if not text:
            return 0
        data = await self.complete(route, "/extras/tokenize/count", {"input": text}, root=True)
        count = data.get("count")
        if not isinstance(count, int):
            raise UpstreamError("upstream tokenize endpoint gave no count")
        return count
