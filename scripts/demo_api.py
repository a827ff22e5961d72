"""The demo's API part: a partner spends its free allowance through the gateway with the openai SDK."""

from __future__ import annotations

import sys

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam


def main(base_url: str, key: str, model: str, passage: str) -> None:
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
    question: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the capital of Korea? Answer in one sentence."}
    ]
    reply = client.chat.completions.create(model=model, messages=question, max_tokens=40, temperature=0)
    print(f"chat reply: {reply.choices[0].message.content!r}")
    print(f"usage: {reply.usage}")
    stream = client.chat.completions.create(
        model=model,
        messages=question,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    print(f"streamed reply: {''.join(text)!r}")
    print(f"streamed usage (charged the same): {usage}")
    ask_copy: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Repeat this text exactly, word for word:\n{passage}"}
    ]
    copied = client.chat.completions.create(model=model, messages=ask_copy, max_tokens=200, temperature=0)
    choice = copied.choices[0]
    print(f"asked to repeat a contributed passage: finish_reason={choice.finish_reason!r}")
    print(f"what the client got: {choice.message.content!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
