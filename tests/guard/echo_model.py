"""A worst-case model on 127.0.0.1 for the audit tests: it has memorised the corpus and repeats.

Text completions of a prompt found in one of its documents continue with the document's true
next characters — exactly, with three letters changed (near-exact), or not at all (fresh
text), by the document's place in its list, so a test knows the right extraction rates from
what it served. Any other prompt, and every chat message, is echoed back. Like llama.cpp's
server it counts one token per character and cuts replies at `max_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request

from tests.gateway.fake_upstream import openai_app

Mode = Literal["exact", "near", "fresh"]
MODES: tuple[Mode, ...] = ("exact", "near", "fresh")
FRESH = "요즘 날씨가 많이 따뜻해져서 주말에 가족과 함께 한강 공원에 다녀왔습니다. " * 8


@dataclass
class EchoModel:
    documents: list[str]
    served: list[Mode] = field(default_factory=list)

    def continuation(self, prompt: str) -> str | None:
        for number, text in enumerate(self.documents):
            at = text.find(prompt)
            if at >= 0:
                mode = MODES[number % len(MODES)]
                self.served.append(mode)
                rest = text[at + len(prompt) :]
                return {"exact": rest, "near": _three_changed(rest), "fresh": FRESH}[mode]
        return None

    def app(self) -> FastAPI:
        async def answer(request: Request, chat: bool) -> dict[str, Any]:
            body = await request.json()
            if chat:
                prompt = str(body["messages"][-1]["content"])
                return _reply(body, prompt, prompt, chat=True)
            prompt = str(body["prompt"])
            text = self.continuation(prompt)
            return _reply(body, prompt, prompt if text is None else text, chat=False)

        return openai_app(answer)


def _three_changed(text: str) -> str:
    """The first Hangul syllable from characters 30, 60 and 90 on changed (a few letters wrong)."""
    chars = list(text)
    for start in (30, 60, 90):
        at = next(i for i in range(start, len(chars)) if "가" <= chars[i] <= "힣")
        chars[at] = "뷁" if chars[at] != "뷁" else "똠"
    return "".join(chars)


def _reply(body: dict[str, Any], prompt: str, text: str, chat: bool) -> dict[str, Any]:
    text = text[: int(body.get("max_tokens") or 256)]
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
    return {
        "id": "echo-1",
        "object": "chat.completion" if chat else "text_completion",
        "model": body.get("model"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(text),
            "total_tokens": len(prompt) + len(text),
        },
    }
