"""A small OpenAI-compatible upstream on 127.0.0.1 that behaves like llama.cpp's server.

Its "tokenizer" counts characters, the same in usage figures and in `/extras/tokenize/count`;
like llama.cpp it sends no usage chunk in streams. It answers `n` choices (and one set per
prompt of a list), calls the first offered tool when the last turn is the user's, and serves
embeddings for the model `embed` only. Special model names make it fail: `fail` answers 500,
`slow` sleeps past any test timeout, `cut` breaks a stream off midway, `picky` refuses
content parts with 400.
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
TOOL_ARGUMENTS = '{"city": "서울", "unit": "celsius"}'
UPSTREAM_MODELS = ("tiny", "embed", "picky")


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


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return content or ""


def _message_tokens(message: dict[str, Any]) -> int:
    calls = message.get("tool_calls") or ()
    return len(_text(message.get("content"))) + sum(
        len(c["function"]["name"] + c["function"]["arguments"]) for c in calls
    )


def prompt_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        return sum(_message_tokens(m) for m in body["messages"]) + SYSTEM_OVERHEAD
    prompt = body["prompt"]
    return sum(len(p) for p in prompt) if isinstance(prompt, list) else len(prompt)


def _reply(body: dict[str, Any]) -> str:
    return REPLY[: body.get("max_tokens") or len(REPLY)]


def _prompts(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    return len(prompt) if isinstance(prompt, list) else 1


def wants_tool(body: dict[str, Any]) -> bool:
    """A request offering tools whose last turn is the user's gets a tool call back."""
    return bool(body.get("tools")) and body["messages"][-1]["role"] == "user"


def tool_call(body: dict[str, Any]) -> dict[str, Any]:
    name = body["tools"][0]["function"]["name"]
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}


def _whole(body: dict[str, Any], chat: bool) -> dict[str, Any]:
    model, text = body.get("model"), _reply(body)
    count = body.get("n") or 1
    choices: list[dict[str, Any]] = []
    completion = 0
    for index in range(count * (1 if chat else _prompts(body))):
        choice: dict[str, Any] = {"index": index, "finish_reason": "length"}
        if chat and wants_tool(body):
            call = tool_call(body)
            choice.update(message={"role": "assistant", "content": None, "tool_calls": [call]})
            choice["finish_reason"] = "tool_calls"
            completion += len(call["function"]["name"] + TOOL_ARGUMENTS)
        else:
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            completion += len(text)
        choices.append(choice)
    prompt = prompt_tokens(body)
    return {
        "id": "fake-1",
        "object": "chat.completion" if chat else "text_completion",
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _chunk(model: Any, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": index, **delta, "finish_reason": finish}
    chunk = {"id": "fake-s", "object": "chunk", "model": model, "choices": [choice]}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


async def _stream(body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Each choice's text a character per event, the choices interleaved; tool calls as
    OpenAI streams them (the call's id and name, then its arguments in pieces)."""
    model, text = body.get("model"), _reply(body)
    count = (body.get("n") or 1) * (1 if chat else _prompts(body))
    if chat and wants_tool(body):
        call = tool_call(body)
        for index in range(count):
            head = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield _chunk(
                model, index, {"delta": {"role": "assistant", "content": None, "tool_calls": [head]}}
            )
        for start in range(0, len(TOOL_ARGUMENTS), 4):
            piece = {"index": 0, "function": {"arguments": TOOL_ARGUMENTS[start : start + 4]}}
            for index in range(count):
                yield _chunk(model, index, {"delta": {"tool_calls": [piece]}})
        for index in range(count):
            yield _chunk(model, index, {"delta": {}}, "tool_calls")
        yield b"data: [DONE]\n\n"
        return
    for i, char in enumerate(text):
        if model == "cut" and i == len(text) // 2:
            raise RuntimeError("connection lost")
        for index in range(count):
            yield _chunk(model, index, {"delta": {"content": char}} if chat else {"text": char})
        await asyncio.sleep(0.002)
    for index in range(count):
        yield _chunk(model, index, {"delta": {}} if chat else {"text": ""}, "length")
    yield b"data: [DONE]\n\n"


def fake_app() -> FastAPI:
    async def answer(request: Request, chat: bool) -> Any:
        body = await request.json()
        model = body.get("model")
        if model == "fail":
            return JSONResponse({"error": "boom"}, status_code=500)
        if model == "slow":
            await asyncio.sleep(30)
        if model == "picky" and any(not isinstance(m["content"], str) for m in body["messages"]):
            return JSONResponse({"error": {"message": "image input is not supported"}}, status_code=400)
        if not body.get("stream"):
            return _whole(body, chat)
        return StreamingResponse(_stream(body, chat), media_type="text/event-stream")

    app = openai_app(answer)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model"} for name in UPSTREAM_MODELS]}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        if body["model"] != "embed":
            return JSONResponse({"error": {"message": "not an embedding model"}}, status_code=501)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 0.5]}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(text) for text in inputs)
        return {
            "object": "list",
            "model": "embed",
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app


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
