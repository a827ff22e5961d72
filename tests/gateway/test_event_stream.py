"""The gateway's event stream on the ASGI interface: its writes, its end, and a client that goes
away before the end or just after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

from tokenclub.gateway.event_stream import EventStream
from tokenclub.gateway.formats import SSE_DONE

SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}}


class Client:
    """An ASGI server's side of one request: what was sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> MutableMapping[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


def test_each_piece_is_one_write_and_the_done_piece_ends_the_stream() -> None:
    closed: list[bool] = []

    async def pieces() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: 1\n\ndata: 2\n\n"
            yield b"data: 3\n\n" + SSE_DONE
            yield b"never sent"
        finally:
            closed.append(True)

    async def run() -> Client:
        client = Client()
        await EventStream(pieces())(SCOPE, client.receive, client.send)
        return client

    client = asyncio.run(run())
    assert client.sent[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in client.sent[0]["headers"]
    assert client.bodies() == [(b"data: 1\n\ndata: 2\n\n", True), (b"data: 3\n\n" + SSE_DONE, False)]
    assert closed == [True]


def test_a_stream_that_ends_without_done_still_ends() -> None:
    async def pieces() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"

    async def run() -> Client:
        client = Client()
        await EventStream(pieces())(SCOPE, client.receive, client.send)
        return client

    assert asyncio.run(run()).bodies() == [(b"data: 1\n\n", True), (b"", False)]


def test_a_client_gone_mid_stream_stops_the_pieces_and_ends_the_response_quietly() -> None:
    stopped: list[str] = []

    async def run() -> tuple[Client, bool]:
        client = Client()
        waiting = asyncio.Event()

        async def pieces() -> AsyncGenerator[bytes, None]:
            try:
                yield b"data: 1\n\n"
                waiting.set()
                await asyncio.Event().wait()  # an upstream that sends nothing more
                yield b"data: 2\n\n"
            except asyncio.CancelledError:
                stopped.append("cancelled")
                raise

        async def leave() -> None:
            await waiting.wait()
            client.gone.set()

        leaving = asyncio.create_task(leave())
        await asyncio.wait_for(EventStream(pieces())(SCOPE, client.receive, client.send), 5)
        await leaving
        # The request's task goes on (the access log line, the settlement) without a stray
        # cancellation.
        await asyncio.sleep(0.01)
        return client, True

    client, went_on = asyncio.run(run())
    assert went_on and stopped == ["cancelled"]
    assert client.bodies() == [(b"data: 1\n\n", True)]


def test_a_client_gone_while_the_end_is_written_cancels_nothing_after_it() -> None:
    async def run() -> list[tuple[bytes, bool]]:
        client = Client()
        plain_send = client.send

        async def send(message: MutableMapping[str, Any]) -> None:
            await plain_send(message)
            if message.get("more_body") is False:
                client.gone.set()  # the client leaves as the end reaches it
                await asyncio.sleep(0)  # a server waiting for its buffer to drain

        async def pieces() -> AsyncGenerator[bytes, None]:
            yield b"data: 1\n\n"
            yield SSE_DONE

        await EventStream(pieces())(SCOPE, client.receive, send)
        for _ in range(3):
            await asyncio.sleep(0)  # a late cancellation would land here
        return client.bodies()

    assert asyncio.run(run()) == [(b"data: 1\n\n", True), (SSE_DONE, False)]


def test_a_cancellation_from_elsewhere_is_not_swallowed() -> None:
    async def run() -> str:
        client = Client()

        async def pieces() -> AsyncGenerator[bytes, None]:
            yield b"data: 1\n\n"
            await asyncio.Event().wait()
            yield SSE_DONE

        task = asyncio.create_task(EventStream(pieces())(SCOPE, client.receive, client.send))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(run()) == "cancelled"
