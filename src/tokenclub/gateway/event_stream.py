"""A reply streamed as server-sent events, handed to the ASGI server with as little on the way
as the protocol allows.

Starlette's `StreamingResponse`, under an ASGI 2.3 server such as uvicorn, runs each stream in
an anyio task group beside its disconnect listener (about 50 µs a stream on this machine) and
ends every stream with a message, and so a socket write, of its own. Here the listener is a
plain task that cancels the stream when the client goes away, and the piece that carries
OpenAI's `data: [DONE]` is sent as the stream's end: one write for the last events and the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenclub.gateway.formats import SSE_DONE


class EventStream(Response):
    """Sends each piece the generator yields as it comes; a piece ending in `[DONE]` ends it."""

    media_type = "text/event-stream"

    def __init__(self, pieces: AsyncGenerator[bytes, None]) -> None:
        self.pieces = pieces
        self.status_code = 200
        self.background = None
        self.init_headers(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        sending, gone = True, False

        async def listen() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                continue
            # The listener runs only while the stream waits, so the cancellation lands on that
            # wait; once the end is sent there is nothing left to stop.
            if sending:
                gone = True
                streaming.cancel()

        listener = asyncio.get_running_loop().create_task(listen())
        try:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(start)
            last = False
            async for piece in self.pieces:
                last = piece.endswith(SSE_DONE)
                await send({"type": "http.response.body", "body": piece, "more_body": not last})
                if last:
                    break
            if not last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            sending = False
            await self.pieces.aclose()
        except asyncio.CancelledError:
            # The client went away: that ends the response as Starlette's streams end then.
            if not gone or streaming.uncancel() > 0:
                raise
        finally:
            sending = False
            listener.cancel()
