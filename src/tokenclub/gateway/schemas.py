"""The request bodies as JSON Schema, for the API docs only: requests are validated by
`requests.py` (which gives OpenAI-shaped 400s), not by these."""

from __future__ import annotations

from typing import Any

_TEXT_OR_TOKENS: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ]
}
_PART: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "refusal", "image_url", "input_audio", "file"]},
        "text": {"type": "string"},
    },
}
_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _PART}, {"type": "null"}]},
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"},
    },
}
_GENERATION: dict[str, Any] = {
    "max_tokens": {"type": "integer", "minimum": 1},
    "n": {"type": "integer", "minimum": 1, "maximum": 128},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "temperature": {"type": "number"},
    "top_p": {"type": "number"},
    "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}


def _body(required: list[str], properties: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": ["model", *required], "properties": properties}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


CHAT = _body(
    ["messages"],
    {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        **_GENERATION,
    },
    {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "서울은 어떤 도시인가요?"}]},
)
COMPLETIONS = _body(
    ["prompt"],
    {"model": {"type": "string"}, "prompt": _TEXT_OR_TOKENS, "best_of": {"type": "integer"}, **_GENERATION},
    {"model": "smollm2-135m-instruct", "prompt": "서울은", "max_tokens": 32},
)
EMBEDDINGS = _body(
    ["input"],
    {"model": {"type": "string"}, "input": _TEXT_OR_TOKENS, "encoding_format": {"enum": ["float", "base64"]}},
    {"model": "embedding-model", "input": ["첫 문장", "둘째 문장"]},
)
