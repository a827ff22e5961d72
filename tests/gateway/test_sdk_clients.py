"""The gateway as agent frameworks and SDKs use it: LangChain's `ChatOpenAI` and LiteLLM's SDK
(plain, streamed, and a tool call sent back with its result)."""

from __future__ import annotations

import os
from typing import Any

from tests.gateway.conftest import MODEL, Served
from tests.gateway.fake_upstream import REPLY, TOOL_ARGUMENTS

# LiteLLM fetches its model price map from the internet at import unless told to use its own copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

QUESTION = "서울 날씨는?"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_langchain_invoke_stream_and_tool_round_trip(served: Served) -> None:
    from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    customer = served.customer()
    llm = ChatOpenAI(model=MODEL, base_url=served.url, api_key=customer.key, max_retries=0, max_tokens=8)
    assert llm.invoke(QUESTION).content == REPLY[:8]
    assert "".join(str(chunk.content) for chunk in llm.stream(QUESTION)) == REPLY[:8]
    with_tools = llm.bind_tools([WEATHER_TOOL])
    messages: list[BaseMessage] = [HumanMessage(QUESTION)]
    asked = with_tools.invoke(messages)
    (call,) = getattr(asked, "tool_calls", [])
    assert (call["name"], call["args"]) == ("weather", {"city": "서울", "unit": "celsius"})
    messages += [asked, ToolMessage("맑음, 21도", tool_call_id=call["id"])]
    assert with_tools.invoke(messages).content == REPLY[:8]
    chunks = list(with_tools.stream([HumanMessage(QUESTION)]))
    streamed = sum(chunks[1:], chunks[0])
    assert [(c["name"], c["args"]) for c in getattr(streamed, "tool_calls", [])] == [
        ("weather", {"city": "서울", "unit": "celsius"})
    ]


def test_litellm_completion_stream_and_tool_round_trip(served: Served) -> None:
    import litellm

    customer = served.customer()
    common: dict[str, Any] = {
        "model": f"openai/{MODEL}",
        "api_base": served.url,
        "api_key": customer.key,
        "max_tokens": 6,
        "num_retries": 0,
    }
    reply = litellm.completion(messages=[{"role": "user", "content": QUESTION}], **common)
    assert reply.choices[0].message.content == REPLY[:6]
    chunks = litellm.completion(messages=[{"role": "user", "content": QUESTION}], stream=True, **common)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY[:6]
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    asked = litellm.completion(messages=messages, tools=[WEATHER_TOOL], **common).choices[0].message
    (call,) = asked.tool_calls
    assert (call.function.name, call.function.arguments) == ("weather", TOOL_ARGUMENTS)
    messages += [asked.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": "맑음"}]
    final = litellm.completion(messages=messages, tools=[WEATHER_TOOL], **common)
    assert final.choices[0].message.content == REPLY[:6]
