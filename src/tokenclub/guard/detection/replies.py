"""What of an upstream reply may reach the client: an allow-list of fields, and every text channel.

An upstream reply is rebuilt, never passed through: only the fields of the OpenAI reply shapes
listed here are copied, with their types checked, so a field the guard does not know (a server's
extension, a hostile upstream's side channel) cannot carry text past it. Every field that carries
free text is a *channel* the guard scans: the content (or a completion's text), the reasoning
fields (`reasoning_content`, `reasoning`), the refusal, and each tool or function call's name and
arguments. Identifiers the upstream makes up (reply and tool call ids, the system fingerprint)
are replaced by the gateway's own, so they carry nothing either.

Logprobs, by policy: a whole reply keeps each token's `token`, `logprob` and `bytes` only when
the tokens spell exactly the text the client gets (so they say nothing the scanned text does
not); `top_logprobs` are always dropped, as the alternatives can spell a copy that the sampled
text avoids and scanning every alternative path is not feasible. Streamed chunks carry no
logprobs: they would spell tokens the stream still holds back.

The functions are pure over the reply dictionaries; `guard/service.py` scans the channels.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Endpoint = Literal["chat", "completions"]
Channel = tuple[str | int, ...]
"""Where a text sits in a choice: ("content",), ("tool_calls", 0, "arguments"), ("text",) …"""

MESSAGE_TEXTS = ("content", "reasoning_content", "reasoning", "refusal")
CALL_PARTS = ("name", "arguments")
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "function_call", "content_filter"})
TOOL_NAME_MAX = 64


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _finish(value: Any) -> str | None:
    if value is None:
        return None
    return value if value in FINISH_REASONS else "stop"


def created(data: dict[str, Any]) -> int:
    """A reply's or chunk's `created` as the client gets it (0 when it is not an integer)."""
    value = data.get("created")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def call_id(reply_id: str, index: int) -> str:
    """The gateway's id for the reply's `index`-th tool call (upstream ids are not forwarded)."""
    return f"call_{reply_id[-24:]}_{index}"


def _call(raw: Any, reply_id: str, position: int, streamed: bool) -> dict[str, Any] | None:
    """One tool call, allow-listed: index, id, type, function name and arguments."""
    if not isinstance(raw, dict):
        return None
    index = raw.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 128:
        return None
    function = raw.get("function")
    function = function if isinstance(function, dict) else {}
    out: dict[str, Any] = {}
    if streamed:
        out["index"] = index
    if raw.get("id") is not None or not streamed:
        out["id"] = call_id(reply_id, index)
        out["type"] = "function"
    parts = {part: _text(function.get(part)) for part in CALL_PARTS}
    if not streamed:
        out["function"] = {k: v or "" for k, v in parts.items()}
    elif any(v is not None for v in parts.values()):
        out["function"] = {k: v for k, v in parts.items() if v is not None}
    return out


def _function_call(raw: Any, streamed: bool) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    parts = {part: _text(raw.get(part)) for part in CALL_PARTS}
    if streamed:
        return {k: v for k, v in parts.items() if v is not None}
    return {k: v or "" for k, v in parts.items()}


def _message(raw: Any, reply_id: str, streamed: bool) -> dict[str, Any]:
    """A message (or a streamed delta), allow-listed."""
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    if "role" in raw or not streamed:
        out["role"] = "assistant"
    for name in MESSAGE_TEXTS:
        value = _text(raw.get(name))
        if value is not None:
            out[name] = value
        elif name == "content" and not streamed:
            out[name] = None
    calls = raw.get("tool_calls")
    if isinstance(calls, list):
        made = (_call(call, reply_id, i, streamed) for i, call in enumerate(calls))
        kept = [call for call in made if call is not None]
        if kept:
            out["tool_calls"] = kept
    function_call = _function_call(raw.get("function_call"), streamed)
    if function_call is not None:
        out["function_call"] = function_call
    return out


def _chat_logprobs(raw: Any, text: str | None) -> dict[str, Any] | None:
    """Token logprobs of a chat message when they spell exactly its content; no alternatives."""
    entries = raw.get("content") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or text is None:
        return None
    kept: list[dict[str, Any]] = []
    tokens: list[str] = []
    for entry in entries:
        token = _text(entry.get("token")) if isinstance(entry, dict) else None
        logprob = _number(entry.get("logprob")) if isinstance(entry, dict) else None
        if token is None or logprob is None:
            return None
        kept.append({"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []})
        tokens.append(token)
    if "".join(tokens) != text:
        return None
    return {"content": kept, "refusal": None}


def _completion_logprobs(raw: Any, text: str) -> dict[str, Any] | None:
    """Token logprobs of a completion when its tokens spell exactly its text; no alternatives."""
    if not isinstance(raw, dict):
        return None
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        return None
    if not all(isinstance(t, str) for t in tokens) or "".join(tokens) != text:
        return None
    numbers = [None if v is None else _number(v) for v in values]
    if any(n is None and v is not None for n, v in zip(numbers, values, strict=True)):
        return None
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {"tokens": tokens, "token_logprobs": numbers, "top_logprobs": None, "text_offset": offsets}


def _index(raw: dict[str, Any], position: int) -> int:
    index = raw.get("index", position)
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def clean_reply(data: Any, endpoint: Endpoint, reply_id: str) -> dict[str, Any]:
    """A whole reply rebuilt from its allow-listed fields (usage is the gateway's to write)."""
    data = data if isinstance(data, dict) else {}
    choices = [c for c in data.get("choices") or () if isinstance(c, dict)]
    out: dict[str, Any] = {
        "id": reply_id,
        "object": "chat.completion" if endpoint == "chat" else "text_completion",
        "created": created(data),
        "model": _text(data.get("model")) or "",
        "choices": [],
    }
    for position, raw in enumerate(choices):
        choice: dict[str, Any] = {"index": _index(raw, position)}
        if endpoint == "chat":
            message = _message(raw.get("message"), reply_id, streamed=False)
            choice["message"] = message
            choice["logprobs"] = _chat_logprobs(raw.get("logprobs"), message.get("content"))
        else:
            text = _text(raw.get("text")) or ""
            choice["text"] = text
            choice["logprobs"] = _completion_logprobs(raw.get("logprobs"), text)
        choice["finish_reason"] = _finish(raw.get("finish_reason"))
        out["choices"].append(choice)
    return out


def clean_chunk(event: Any, endpoint: Endpoint, reply_id: str) -> dict[str, Any]:
    """A streamed event rebuilt from its allow-listed fields: the first choice only (the gateway
    asks for one), its delta, finish reason, no logprobs."""
    event = event if isinstance(event, dict) else {}
    out: dict[str, Any] = {
        "id": reply_id,
        "object": "chat.completion.chunk" if endpoint == "chat" else "text_completion",
        "created": created(event),
        "model": _text(event.get("model")) or "",
        "choices": [],
    }
    raw = next(
        (c for c in event.get("choices") or () if isinstance(c, dict) and c.get("index", 0) == 0), None
    )
    if raw is None:
        return out
    choice: dict[str, Any] = {"index": 0}
    if endpoint == "chat":
        choice["delta"] = _message(raw.get("delta"), reply_id, streamed=True)
    else:
        choice["text"] = _text(raw.get("text")) or ""
    choice["logprobs"] = None
    choice["finish_reason"] = _finish(raw.get("finish_reason"))
    out["choices"].append(choice)
    return out


def _holder(choice: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The dictionary a choice keeps its texts in: message, delta, or the choice itself."""
    if endpoint == "completions":
        return choice
    holder: dict[str, Any] = choice.setdefault("message" if "message" in choice else "delta", {})
    return holder


def channels(choice: dict[str, Any], endpoint: Endpoint) -> dict[Channel, str]:
    """Every text of a (cleaned) choice or streamed delta, by channel."""
    if endpoint == "completions":
        text = choice.get("text")
        return {("text",): text} if isinstance(text, str) and text else {}
    holder = _holder(choice, endpoint)
    found: dict[Channel, str] = {
        (name,): holder[name] for name in MESSAGE_TEXTS if isinstance(holder.get(name), str) and holder[name]
    }
    for position, call in enumerate(holder.get("tool_calls") or ()):
        index = call.get("index", position)
        for part in CALL_PARTS:
            value = (call.get("function") or {}).get(part)
            if isinstance(value, str) and value:
                found[("tool_calls", index, part)] = value
    for part in CALL_PARTS:
        value = (holder.get("function_call") or {}).get(part)
        if isinstance(value, str) and value:
            found[("function_call", part)] = value
    return found


def set_channel(choice: dict[str, Any], endpoint: Endpoint, channel: Channel, text: str) -> None:
    """Write one channel's text back into a (cleaned) choice or delta."""
    if endpoint == "completions":
        choice["text"] = text
        return
    holder = _holder(choice, endpoint)
    if len(channel) == 1:
        holder[str(channel[0])] = text
    elif channel[0] == "function_call":
        holder.setdefault("function_call", {})[str(channel[1])] = text
    else:
        _, index, part = channel
        calls = holder.setdefault("tool_calls", [])
        call = next((c for p, c in enumerate(calls) if c.get("index", p) == index), None)
        if call is None:
            call = {"index": index}
            calls.append(call)
        call.setdefault("function", {})[str(part)] = text
