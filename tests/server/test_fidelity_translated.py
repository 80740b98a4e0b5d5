"""The OpenAI door in front of an Anthropic upstream: tool calls, JSON and streamed, come back
in OpenAI's shape through the official SDK, are cached like any answer, and a field the
upstream cannot honour is a 400 naming the field and the upstream.
"""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI, BadRequestError

from vex_llm import AnthropicProvider

from ..fakes import LoopbackServer, Reply, json_reply
from ..test_anthropic_tools import EVENTS, MESSAGE, stream_body
from .conftest import KEY_A, MODEL, proxy

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time"}},
]
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in SF?"}], "tools": TOOLS}
CALLS = [
    ("toolu_01", "get_weather", '{"location": "San Francisco, CA", "unit": "°C"}'),
    ("toolu_02", "get_time", "{}"),
]


def _calls(message: object) -> list[tuple[str, str, str]]:
    return [
        (c.id, c.function.name, c.function.arguments)
        for c in getattr(message, "tool_calls", None) or ()
    ]


async def test_anthropic_tool_calls_through_the_openai_door() -> None:
    async with LoopbackServer(
        lambda r: Reply(body=stream_body(EVENTS)) if r.json().get("stream") else json_reply(MESSAGE)
    ) as upstream:
        provider = AnthropicProvider("sk-ant-upstream", base_url=upstream.url)
        async with proxy(provider) as base:
            client = AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0)
            async with client:
                raw = await client.chat.completions.with_raw_response.create(**ASK)
                answer = raw.parse()
                assert raw.headers["x-vex-cache"] == "miss"
                assert _calls(answer.choices[0].message) == CALLS
                assert answer.choices[0].message.content == "Let me check."
                assert answer.choices[0].finish_reason == "tool_calls"
                assert answer.usage is not None
                assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (472, 89)
                # A stream of another question: tool calls streamed as OpenAI deltas.
                streamed_ask = {**ASK, "messages": [{"role": "user", "content": "again"}]}
                async with client.chat.completions.stream(
                    **streamed_ask, stream_options={"include_usage": True}
                ) as stream:
                    final = await stream.get_final_completion()
                assert _calls(final.choices[0].message) == CALLS
                assert final.choices[0].finish_reason == "tool_calls"
                calls = len(upstream.requests)
                # Both repeat as hits, each in the other's shape too.
                again = await client.chat.completions.with_raw_response.create(**streamed_ask)
                assert again.headers["x-vex-cache"] == "hit"
                assert _calls(again.parse().choices[0].message) == CALLS
                async with client.chat.completions.stream(**ASK) as stream:
                    replay = await stream.get_final_completion()
                assert _calls(replay.choices[0].message) == CALLS
                assert len(upstream.requests) == calls
                with pytest.raises(BadRequestError) as refused:
                    await client.chat.completions.create(**ASK, logprobs=True)
                error = refused.value.body
                assert isinstance(error, dict)
                assert error["param"] == "logprobs"
                assert "anthropic" in error["message"]
                assert len(upstream.requests) == calls
