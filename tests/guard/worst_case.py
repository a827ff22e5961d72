"""A worst-case upstream for tests and the red team: it puts whatever text it is told into whatever
reply field it is told, in the disguise it is told, whole or streamed in pieces of the size it is
told. A test helper, never shipped as a model.

The order is the last user message (or the prompt), a JSON object::

    {"text": "…", "channel": "content", "disguise": "verbatim", "piece": 1}

`channel` is one of `CHANNELS`; `disguise` a name in `tests.guard.disguise.DISGUISES`; `piece`
the streamed chunk size in characters. ``{"recall": n, "piece": 3}`` answers with the n-th of the
texts the app was made with, as it is, in `content` (`recall`: an honest request, which holds no
text). A message that is neither is echoed back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from tests.gateway.fake_upstream import openai_app, prompt_tokens
from tests.guard.disguise import ALL_DISGUISES

COVER = "네, 요청하신 내용을 정리했습니다."
CHANNELS = (
    "content",
    "reasoning_content",
    "reasoning",
    "refusal",
    "tool_arguments",
    "tool_name",
    "function_arguments",
    "top_logprobs",
    "unknown_field",
)


def order(text: str, channel: str = "content", disguise: str = "verbatim", piece: int = 3) -> str:
    """The message that makes the upstream perform one attack."""
    return json.dumps(
        {"text": text, "channel": channel, "disguise": disguise, "piece": piece}, ensure_ascii=False
    )


def recall(number: int, piece: int = 0) -> str:
    """The message that makes the upstream answer with its `number`-th text (`worst_case_app`'s
    `texts`) as it is: a reply the model writes itself, as an honest customer gets one. The
    message carries neither the text nor any wording that asks to reproduce one."""
    return json.dumps({"recall": number, "piece": piece})


def _order(body: dict[str, Any], texts: Sequence[str]) -> dict[str, Any]:
    said = str(body["messages"][-1]["content"]) if "messages" in body else str(body["prompt"])
    try:
        spec = json.loads(said)
    except json.JSONDecodeError:
        spec = None
    if isinstance(spec, dict) and isinstance(spec.get("recall"), int) and 0 <= spec["recall"] < len(texts):
        return {"text": texts[spec["recall"]], "channel": "content", "piece": spec.get("piece", 0)}
    if not isinstance(spec, dict) or "text" not in spec:
        return {"text": said, "channel": "content", "disguise": "verbatim", "piece": 3}
    return spec


def _pieces(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), max(1, size)):
        yield text[start : start + size]


def _message(channel: str, text: str) -> dict[str, Any]:
    """A whole chat message carrying `text` in `channel`."""
    message: dict[str, Any] = {"role": "assistant", "content": COVER}
    if channel in ("content", "reasoning_content", "reasoning", "refusal"):
        message[channel] = text
    elif channel == "tool_arguments":
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "save", "arguments": json.dumps({"note": text}, ensure_ascii=False)},
            }
        ]
    elif channel == "tool_name":
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": text, "arguments": "{}"}}
        ]
    elif channel == "function_arguments":
        message["function_call"] = {"name": "save", "arguments": text}
    elif channel == "unknown_field":
        message["x_extra"] = text
    return message


def _alternatives(cover: str, text: str) -> list[dict[str, Any]]:
    """Chat logprobs of `cover`, one character a token, whose top alternatives spell `text`."""
    entries = []
    for i, char in enumerate(cover.ljust(len(text), ".")):
        alt = text[i] if i < len(text) else char
        entries.append(
            {
                "token": char,
                "logprob": -0.1,
                "bytes": list(char.encode()),
                "top_logprobs": [{"token": alt, "logprob": -0.05, "bytes": list(alt.encode())}],
            }
        )
    return entries


def _whole(chat: bool, spec: dict[str, Any], text: str, body: dict[str, Any]) -> dict[str, Any]:
    channel = spec["channel"]
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": _message(channel, text), "finish_reason": "stop"}
        if channel == "top_logprobs":
            cover = COVER.ljust(len(text), ".")
            choice["message"]["content"] = cover
            choice["logprobs"] = {"content": _alternatives(cover, text)}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        if channel == "top_logprobs":
            cover = COVER.ljust(len(text), ".")
            choice["text"] = cover
            choice["logprobs"] = {
                "tokens": list(cover),
                "token_logprobs": [-0.1] * len(cover),
                "top_logprobs": [{text[i]: -0.05} for i in range(len(text))],
                "text_offset": list(range(len(cover))),
            }
    made = len(text)
    reply: dict[str, Any] = {
        "id": "upstream-1",
        "object": "chat.completion" if chat else "text_completion",
        "model": body.get("model"),
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens(body), "completion_tokens": made, "total_tokens": made},
    }
    if channel == "unknown_field":
        reply["x_extra"] = text
    return reply


def _deltas(channel: str, text: str, size: int) -> Iterator[dict[str, Any]]:
    """The chat deltas of a streamed reply carrying `text` in `channel`."""
    yield {"role": "assistant", "content": ""}
    if channel in ("content", "reasoning_content", "reasoning", "refusal"):
        for piece in _pieces(text, size):
            yield {channel: piece}
    elif channel == "tool_arguments":
        yield {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "save", "arguments": ""},
                }
            ]
        }
        for piece in _pieces(json.dumps({"note": text}, ensure_ascii=False), size):
            yield {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
    elif channel == "tool_name":
        yield {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": text}}]}
        yield {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    elif channel == "function_arguments":
        yield {"function_call": {"name": "save", "arguments": ""}}
        for piece in _pieces(text, size):
            yield {"function_call": {"arguments": piece}}
    elif channel == "unknown_field":
        for piece in _pieces(text, size):
            yield {"content": "", "x_extra": piece}
    else:  # top_logprobs: handled by the caller
        yield {"content": COVER}


def _stream(chat: bool, spec: dict[str, Any], text: str, body: dict[str, Any]) -> StreamingResponse:
    channel, size = spec["channel"], int(spec.get("piece") or 3)

    def event(choice: dict[str, Any]) -> bytes:
        payload = {"id": "upstream-s", "object": "chunk", "model": body.get("model"), "choices": [choice]}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        if not chat:
            for piece in _pieces(text, size):
                yield event({"index": 0, "text": piece})
                await asyncio.sleep(0)
        elif channel == "top_logprobs":
            cover = COVER.ljust(len(text), ".")
            for i, entry in enumerate(_alternatives(cover, text)):
                yield event({"index": 0, "delta": {"content": cover[i]}, "logprobs": {"content": [entry]}})
                await asyncio.sleep(0)
        else:
            for delta in _deltas(channel, text, size):
                yield event({"index": 0, "delta": delta})
                await asyncio.sleep(0)
        done: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            done["delta"] = {}
        else:
            done["text"] = ""
        yield event(done)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def worst_case_app(texts: Sequence[str] = ()) -> FastAPI:
    """`texts`: what a `recall` order answers with."""

    async def answer(request: Request, chat: bool) -> Any:
        body = await request.json()
        spec = _order(body, texts)
        text = ALL_DISGUISES[spec.get("disguise", "verbatim")](spec["text"])
        if body.get("stream"):
            return _stream(chat, spec, text, body)
        return _whole(chat, spec, text, body)

    return openai_app(answer)
