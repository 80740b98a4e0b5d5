"""The Anthropic door in front of an Anthropic upstream, with the official anthropic SDK: the
upstream is sent exactly what the client sent (cache hints, thinking, metadata and all), and
its own ``message`` and events come back as they came, on misses and on hits, JSON and
streamed and across the two; a stream cut short ends with an ``error`` event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic import AsyncAnthropic, RateLimitError

from vex_llm import AnthropicProvider

from ..fakes import LoopbackServer, Recorded, Reply, json_reply
from ..test_anthropic_tools import EVENTS, MESSAGE, stream_body
from .conftest import KEY_A, MODEL, make_settings, proxy
from .test_messages_door import events_of

ASK: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 256,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]}],
    "tools": [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
    "metadata": {"user_id": "u-1"},
    "thinking": {"type": "disabled"},
}


def upstream_reply(request: Recorded) -> Reply:
    if request.json().get("stream"):
        return Reply(headers={"content-type": "text/event-stream"}, body=stream_body(EVENTS))
    return json_reply(MESSAGE, headers={"request-id": "req_01"})


def wire(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    return [(name, json.loads(json.dumps(data))) for name, data in events]


async def test_relayed_as_it_came_and_replayed_on_hits() -> None:
    async with LoopbackServer(upstream_reply) as upstream:
        provider = AnthropicProvider("sk-ant-upstream", model=MODEL, base_url=upstream.url)
        async with proxy(provider) as base:
            root = base.removesuffix("/v1")
            client = AsyncAnthropic(base_url=root, api_key=KEY_A, max_retries=0)
            async with client:
                raw = await client.messages.with_raw_response.create(**ASK)
                message = await raw.parse()
                assert raw.headers["x-vex-cache"] == "miss"
                # The upstream got the body as the client sent it; the answer came back whole.
                assert upstream.requests[-1].json() == ASK
                assert upstream.requests[-1].headers["x-api-key"] == "sk-ant-upstream"
                assert message.model_dump(exclude_none=True) == {
                    k: v for k, v in MESSAGE.items() if v is not None
                }
                # A repeat is a hit with the very same object; so is a stream of it, whose
                # events carry it (a stream hit from a stored JSON answer).
                again = await client.messages.with_raw_response.create(**ASK)
                assert again.headers["x-vex-cache"] == "hit"
                assert (await again.parse()) == message
                async with client.messages.stream(**ASK) as stream:
                    replayed = await stream.get_final_message()
                assert replayed.model_dump() == message.model_dump()
                assert len(upstream.requests) == 1
                # Another question streamed: the upstream's own events, then the same on a hit.
                other = {**ASK, "messages": [{"role": "user", "content": "And in Paris?"}]}
                outcome, live = await events_of(root, other)
                assert outcome == "miss"
                assert upstream.requests[-1].json() == {**other, "stream": True}
                assert live == wire(EVENTS)
                outcome, hit = await events_of(root, other)
                assert (outcome, hit) == ("hit", live)
                # A JSON hit from the stored stream: the message its events amount to.
                from_stream = await client.messages.with_raw_response.create(**other)
                assert from_stream.headers["x-vex-cache"] == "hit"
                assert (await from_stream.parse()).model_dump() == message.model_dump()
                assert len(upstream.requests) == 2


async def test_a_stream_cut_short_ends_with_an_error_event() -> None:
    def cut(request: Recorded) -> Reply:
        return Reply(
            headers={"content-type": "text/event-stream"},
            body=stream_body(EVENTS[:4]),
            complete=False,
        )

    async with LoopbackServer(cut) as upstream:
        provider = AnthropicProvider("sk-ant-upstream", model=MODEL, base_url=upstream.url)
        settings_free = proxy(provider)
        async with settings_free as base:
            outcome, events = await events_of(base.removesuffix("/v1"), ASK)
    assert outcome == "miss"
    assert [name for name, _ in events][:4] == [name for name, _ in EVENTS[:4]]
    name, error = events[-1]
    assert name == "error"
    assert error["type"] == "error"
    assert error["error"]["type"] == "api_error"


async def test_an_upstream_rate_limit_is_anthropic_s_429() -> None:
    def limited(request: Recorded) -> Reply:
        error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        return json_reply(error, status=429, headers={"retry-after": "7"})

    async with LoopbackServer(limited) as upstream:
        provider = AnthropicProvider("sk-ant-upstream", model=MODEL, base_url=upstream.url)
        async with proxy(provider, make_settings(upstream={"retry": None})) as base:
            client = AsyncAnthropic(base_url=base.removesuffix("/v1"), api_key=KEY_A, max_retries=0)
            async with client:
                with pytest.raises(RateLimitError) as limited_error:
                    await client.messages.create(**ASK)
    assert limited_error.value.response.headers["retry-after"] == "7"
    body = limited_error.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
