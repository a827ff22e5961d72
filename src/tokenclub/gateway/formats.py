"""The OpenAI request and reply formats: the one place that knows where chat, completions and
embeddings keep their text, so the rest of the gateway asks a format instead of an endpoint name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tokenclub.gateway.billing import Usage

Kind = Literal["chat", "completions", "embeddings"]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def tool_call_text(calls: Any) -> str:
    """The generated part of tool calls (names and argument text), as streamed or whole."""
    parts: list[str] = []
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(_str(function.get("name")) + _str(function.get("arguments")))
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class ApiFormat:
    """One OpenAI endpoint's shapes."""

    kind: Kind
    path: str
    chunk_object: str

    @property
    def generates(self) -> bool:
        """Whether replies carry generated text (embeddings do not)."""
        return self.kind != "embeddings"

    def generated(self, choice: dict[str, Any], streamed: bool) -> str:
        """Everything the model generated in a choice or delta, tool calls included: what a
        reply without usage figures is counted by."""
        if self.kind != "chat":
            return _str(choice.get("text"))
        message = choice.get("delta" if streamed else "message") or {}
        text = _str(message.get("content")) + _str(message.get("reasoning_content"))
        return text + tool_call_text(message.get("tool_calls"))

    def text_only(self, event: dict[str, Any]) -> tuple[int, str] | None:
        """The choice index and text of a streamed event that carries one choice's next text
        and nothing else a client is sent (no usage, role, tool call, logprobs or finish
        reason), else None: most events of a stream, whose text a guard only holds."""
        if event.get("usage") is not None:
            return None
        choices = event.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") is not None:
            return None
        index = choice.get("index", 0)
        if type(index) is not int or choice.get("logprobs") is not None:
            return None
        if self.kind == "chat":
            delta = choice.get("delta")
            if type(delta) is not dict or len(delta) != 1:
                return None
            text = delta.get("content")
        else:
            text = choice.get("text")
        return (index, text) if type(text) is str else None

    def reply_texts(self, data: dict[str, Any]) -> list[str]:
        """The generated text of each choice of a whole reply."""
        return [
            self.generated(choice, False) for choice in data.get("choices") or () if isinstance(choice, dict)
        ]

    def usage_chunk(self, chunk_id: str, model: str, usage: Usage) -> dict[str, Any]:
        """The final chunk a client asking for `stream_options.include_usage` expects."""
        return {
            "id": chunk_id,
            "object": self.chunk_object,
            "model": model,
            "choices": [],
            "usage": usage_dict(usage),
        }


CHAT = ApiFormat("chat", "/chat/completions", "chat.completion.chunk")
COMPLETIONS = ApiFormat("completions", "/completions", "text_completion")
EMBEDDINGS = ApiFormat("embeddings", "/embeddings", "list")


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def usage_from(data: dict[str, Any] | None) -> Usage | None:
    """The upstream's own figures, when present and well-formed (embeddings report no
    completion tokens)."""
    usage = (data or {}).get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return Usage(prompt, completion)
    return None


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event as OpenAI streams them."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"
