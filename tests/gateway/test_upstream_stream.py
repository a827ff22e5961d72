"""The upstream client's stream reading: lines across chunk cuts, long events, reused connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from aiohttp import web

from tokenclub.gateway.upstream import ModelRoute, Upstream, UpstreamError, sse_reads


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(reads: AsyncIterator[list[bytes]]) -> list[list[bytes]]:
    return [lines async for lines in reads]


def test_lines_are_joined_across_chunk_cuts_lose_their_line_ends_and_keep_their_read() -> None:
    reads = asyncio.run(
        _collect(sse_reads(_chunks(b'data: {"a"', b": 1}\r\n\r\nda", b"ta: [DONE]\n", b"tail")))
    )
    assert reads == [[b'data: {"a": 1}', b""], [b"data: [DONE]"], [b"tail"]]


async def _serve_and_stream(streams: int) -> tuple[list[list[dict[str, object]]], set[int], str]:
    """A real HTTP server sending one 200 KB event per stream (beyond aiohttp's own line limit),
    then [DONE]; returns what the client parsed and the client ports the server saw."""
    peers: set[int] = set()
    big = "가" * 70_000

    async def chat(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        event = {"model": body["model"], "choices": [{"delta": {"content": big}}]}
        await response.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream = Upstream({}, timeout_s=5.0)
    route = ModelRoute("m", f"http://127.0.0.1:{port}/v1", "served-m")
    try:
        got = []
        for _ in range(streams):
            reads = upstream.stream(route, "/chat/completions", {"stream": True})
            got.append([event async for events in reads for event in events])
        try:
            await upstream.complete(route, "/missing", {})
            missing = ""
        except UpstreamError as exc:
            missing = str(exc)
    finally:
        await upstream.aclose()
        await runner.cleanup()
    return got, peers, missing


def test_long_events_parse_and_finished_streams_give_their_connection_back() -> None:
    got, peers, missing = asyncio.run(_serve_and_stream(5))
    assert [len(events) for events in got] == [1] * 5
    event = got[0][0]
    assert event["model"] == "served-m"
    assert len(event["choices"][0]["delta"]["content"]) == 70_000  # type: ignore[index]
    assert len(peers) == 1  # five streams, one keep-alive connection
    assert missing.startswith("upstream answered 404")
