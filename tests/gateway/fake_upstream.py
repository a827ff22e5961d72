"""A small OpenAI-compatible upstream on 127.0.0.1 that behaves like llama.cpp's server.

Its "tokenizer" counts characters, the same in usage figures and in `/extras/tokenize/count`;
like llama.cpp it sends no usage chunk in streams. Special model names make it fail:
`fail` answers 500, `slow` sleeps past any test timeout, `cut` breaks a stream off midway.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

REPLY = "서울은 대한민국의 수도입니다. 한강이 도시를 가로지릅니다."
SYSTEM_OVERHEAD = 5


Answer = Callable[[Request, bool], Awaitable[Any]]


def openai_app(answer: Answer) -> FastAPI:
    """The routes every test upstream serves around its own `answer(request, chat)`; its
    tokenize endpoint counts characters, as the fakes' usage figures do."""
    app = FastAPI()

    @app.post("/extras/tokenize/count")
    async def count(request: Request) -> dict[str, int]:
        return {"count": len((await request.json())["input"])}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await answer(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await answer(request, False)

    return app


def prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        return sum(len(m["content"]) for m in body["messages"]) + SYSTEM_OVERHEAD
    return len(body["prompt"])


def _reply(body: dict[str, Any]) -> str:
    return REPLY[: body.get("max_tokens") or len(REPLY)]


def fake_app() -> FastAPI:
    async def answer(request: Request, chat: bool) -> Any:
        body = await request.json()
        model = body.get("model")
        if model == "fail":
            return JSONResponse({"error": "boom"}, status_code=500)
        if model == "slow":
            await asyncio.sleep(30)
        text = _reply(body)
        if not body.get("stream"):
            choice = {"index": 0, "finish_reason": "length"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            prompt = prompt_tokens(body)
            return {
                "id": "fake-1",
                "object": "chat.completion" if chat else "text_completion",
                "model": model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(text),
                    "total_tokens": prompt + len(text),
                },
            }

        async def events() -> AsyncIterator[bytes]:
            for i, char in enumerate(text):
                if model == "cut" and i == len(text) // 2:
                    raise RuntimeError("connection lost")
                delta = {"delta": {"content": char}} if chat else {"text": char}
                chunk = {
                    "id": "fake-s",
                    "object": "chunk",
                    "model": model,
                    "choices": [{"index": 0, **delta}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                await asyncio.sleep(0.002)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return openai_app(answer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run an ASGI app on a free loopback port for the duration of the block; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
