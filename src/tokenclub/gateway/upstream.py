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

import aiohttp

KEEPALIVE_S = 30.0
MAX_CONNECTIONS = 512


class UpstreamError(Exception):
    """The upstream failed, timed out or refused the request; the request is charged nothing.

    `status` is the upstream's HTTP status when it answered one, `detail` its error message
    (shortened), which a client may be shown when the upstream refused the request itself."""

    def __init__(
        self, message: str, timeout: bool = False, status: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.status = status
        self.detail = detail


DETAIL_LIMIT = 200


def _refused(status: int, raw: bytes) -> UpstreamError:
    """An error answer: its message (OpenAI's `error.message`, else the start of the body)."""
    text = raw[:4096].decode(errors="replace")
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        text = message if isinstance(message, str) else text
    except (ValueError, AttributeError, RecursionError):
        pass
    detail = text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"
    return UpstreamError(f"upstream answered {status}: {detail}", status=status, detail=detail)


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


def _failed(exc: BaseException, when: str = "") -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamError(f"upstream timed out{when}: {exc!r}", timeout=True)
    return UpstreamError(f"upstream {'broke off' + when if when else 'unreachable'}: {exc!r}")


class Upstream:
    """One shared aiohttp session for all upstream calls (connection pooling, keep-alive).

    aiohttp rather than httpx: in the same FastAPI pass-through on this machine httpx added
    1.4 ms per call and collapsed to ~460 requests/s at 50 connections, aiohttp 0.5 ms and
    ~2,200 requests/s (docs/gateway.md). The session is made on first use, inside the
    worker's event loop, as aiohttp requires.
    """

    def __init__(self, routes: dict[str, ModelRoute], timeout_s: float = 120.0) -> None:
        self.routes = routes
        # Like the former httpx timeout: 5 s to connect, then timeout_s for each read.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, route: ModelRoute) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if route.api_key:
            headers["Authorization"] = f"Bearer {route.api_key}"
        return headers

    def _body(self, route: ModelRoute, body: dict[str, Any]) -> bytes:
        return json.dumps({**body, "model": route.upstream_model}, ensure_ascii=False).encode()

    async def complete(
        self, route: ModelRoute, path: str, body: dict[str, Any], *, root: bool = False
    ) -> dict[str, Any]:
        """A non-streamed call (under `/v1`, or under the server root); raises UpstreamError."""
        url = (route.server_root if root else route.base_url) + path
        try:
            async with self._client().post(
                url, data=self._body(route, body), headers=self._headers(route)
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(exc) from exc
        if status >= 400:
            raise _refused(status, raw)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UpstreamError("upstream answered with invalid JSON") from exc
        return well_formed(data, "reply")

    async def stream(
        self, route: ModelRoute, path: str, body: dict[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Parsed server-sent event payloads until `[DONE]`, together as each read brought them,
        so the gateway can write what arrived at once in one write. An invalid event raises
        only after the events before it in the same read have been handed over."""
        url = route.base_url + path
        try:
            response = await self._client().post(
                url, data=self._body(route, body), headers=self._headers(route)
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(exc) from exc
        finished = False
        try:
            if response.status >= 400:
                raise _refused(response.status, await response.read())
            done = False
            async for lines in sse_reads(response.content.iter_any()):
                # After [DONE] the rest of the body is still read, so the connection goes back
                # to the pool instead of being thrown away.
                if done:
                    continue
                events: list[dict[str, Any]] = []
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        events.append(_event(payload))
                    except UpstreamError:
                        if events:
                            yield events
                        raise
                if events:
                    yield events
            finished = True
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _failed(exc, " mid-stream") from exc
        finally:
            if finished:
                response.release()
            else:
                response.close()

    async def count_tokens(self, route: ModelRoute, text: str) -> int:
        """Tokens of `text` in the served model's own tokenizer (llama.cpp's tokenize endpoint)."""
        if not text:
            return 0
        data = await self.complete(route, "/extras/tokenize/count", {"input": text}, root=True)
        count = data.get("count")
        if not isinstance(count, int):
            raise UpstreamError("upstream tokenize endpoint gave no count")
        return count


def _event(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamError("upstream sent an invalid stream event") from exc
    return well_formed(data, "stream event")


def well_formed(data: Any, what: str) -> dict[str, Any]:
    """An upstream payload in the shape the gateway reads, or UpstreamError (a 502, the hold
    voided): a JSON object whose `choices`, when present, are objects with object-valued
    `message`/`delta`."""
    if not isinstance(data, dict):
        raise UpstreamError(f"upstream {what} is not a JSON object")
    choices = data.get("choices")
    if choices is None:
        return data
    if not isinstance(choices, list):
        raise UpstreamError(f"upstream {what}: choices is not a list")
    for choice in choices:
        if not isinstance(choice, dict) or any(
            not isinstance(choice.get(field), dict | None) for field in ("message", "delta")
        ):
            raise UpstreamError(f"upstream {what}: a choice is not a well-formed object")
    return data


def model_ids(raw: bytes) -> list[str]:
    """The ids in an OpenAI model list."""
    try:
        data = json.loads(raw).get("data")
    except (ValueError, AttributeError, RecursionError) as exc:
        raise UpstreamError("upstream model list is not an OpenAI model list") from exc
    if not isinstance(data, list):
        raise UpstreamError("upstream model list has no data")
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]


async def sse_reads(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The body's lines without their line ends, each read's complete lines together, however
    the chunks cut them and however long they are (an event may exceed aiohttp's own line
    limit)."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines:
            yield [line.rstrip(b"\r") for line in lines]
    if pending:
        yield [pending.rstrip(b"\r")]
