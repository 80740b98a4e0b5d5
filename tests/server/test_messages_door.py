"""The Anthropic door (``POST /v1/messages``) in front of an OpenAI-compatible upstream, with
the official anthropic SDK: the request is translated into the typed fields the upstream gets
in OpenAI's shape, the answer comes back as a ``message`` and as Anthropic's event stream,
tool use included; a repeat is a hit with the same events, JSON and streamed and across the
two; bad input is a 400 in Anthropic's error shape, never a 500.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from anthropic import AsyncAnthropic

from vex_llm import OpenAICompatibleProvider

from .conftest import KEY_A, MODEL, proxy, serve
from .rich_upstream import RichUpstream

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


@contextlib.asynccontextmanager
async def door() -> AsyncIterator[tuple[RichUpstream, AsyncAnthropic, str]]:
    """The fake OpenAI upstream, an anthropic client through the proxy, the proxy's root."""
    upstream = RichUpstream()
    async with serve(upstream.app) as upstream_url:
        provider = OpenAICompatibleProvider(f"{upstream_url}/v1", model=MODEL)
        async with proxy(provider) as base:
            root = base.removesuffix("/v1")
            client = AsyncAnthropic(base_url=root, api_key=KEY_A, max_retries=0)
            async with client:
                yield upstream, client, root


async def events_of(root: str, body: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """``x-vex-cache`` and the (event, data) pairs of a streamed ``/v1/messages`` call."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{root}/v1/messages", json={**body, "stream": True}, headers={"x-api-key": KEY_A}
        )
    assert answer.status_code == 200, answer.text
    events = []
    for block in answer.text.split("\n\n"):
        if block:
            name, data = block.split("\n", 1)
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return answer.headers["x-vex-cache"], events


def without_ids(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for name, data in events:
        if name == "message_start":
            data = {**data, "message": {**data["message"], "id": "-"}}
        out.append((name, data))
    return out


async def test_text_json_and_stream_cached_and_translated() -> None:
    async with door() as (upstream, client, root):
        ask: Any = {
            "model": MODEL,
            "max_tokens": 64,
            "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [{"role": "user", "content": "Hello there"}],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            # This SDK has no sampling arguments of its own any more: extra_body carries them.
            "extra_body": {"temperature": 0.5, "top_k": 5},
        }
        first = await client.messages.with_raw_response.create(**ask)
        message = await first.parse()
        assert first.headers["x-vex-cache"] == "miss"
        assert (message.type, message.role) == ("message", "assistant")
        assert [b.type for b in message.content] == ["text"]
        assert message.content[0].text.startswith("echo 0: Hello there")  # type: ignore[union-attr]
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens == 9
        sent = upstream.bodies[-1]
        # The typed translation, in OpenAI's shape; the cache hint is Anthropic's alone.
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ]
        assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (64, ["END"], 0.5)
        assert sent["top_k"] == 5
        assert "metadata" not in sent  # Anthropic's label; it cannot change the answer
        # metadata is not keyed: another user id is the same question.
        again = await client.messages.with_raw_response.create(
            **{**ask, "metadata": {"user_id": "u-2"}}
        )
        assert again.headers["x-vex-cache"] == "hit"
        assert (await again.parse()).content == message.content
        assert upstream.calls == 1
        # Streamed: a stream hit from the stored JSON answer, then a fresh stream and its hit.
        plain = {k: v for k, v in ask.items() if k != "extra_body"} | ask["extra_body"]
        outcome, replay = await events_of(root, plain)
        assert outcome == "hit"
        assert [name for name, _ in replay] == [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert replay[3][1]["delta"] == {"type": "text_delta", "text": message.content[0].text}  # type: ignore[union-attr]
        assert replay[-2][1]["delta"]["stop_reason"] == "end_turn"
        other = {**plain, "messages": [{"role": "user", "content": "Another one"}]}
        outcome, live = await events_of(root, other)
        assert outcome == "miss"
        outcome, hit = await events_of(root, other)
        assert outcome == "hit"
        assert without_ids(hit) == without_ids(live)
        other_sdk = {**ask, "messages": other["messages"]}
        async with client.messages.stream(**other_sdk) as stream:
            final = await stream.get_final_message()
        assert final.content[0].text.startswith("echo 0: Another one")  # type: ignore[union-attr]
        assert final.usage.output_tokens == 9
        # A JSON hit from the stored stream.
        from_stream = await client.messages.with_raw_response.create(**other_sdk)
        assert from_stream.headers["x-vex-cache"] == "hit"
        assert (await from_stream.parse()).content[0].text == final.content[0].text  # type: ignore[union-attr]
        assert upstream.calls == 2


async def test_tool_use_json_and_streamed() -> None:
    async with door() as (upstream, client, root):
        ask: Any = {
            "model": MODEL,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "any"},
        }
        message = await client.messages.create(**ask)
        assert message.stop_reason == "tool_use"
        calls = [(b.name, b.input) for b in message.content if b.type == "tool_use"]
        assert calls == [
            ("get_weather", {"q": "Weather in Paris?", "i": 0}),
            ("get_time", {"q": "Weather in Paris?", "i": 1}),
        ]
        sent = upstream.bodies[-1]
        assert sent["tool_choice"] == "required"
        assert sent["tools"][0] == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER["input_schema"],
            },
        }
        # One call at most, streamed: input_json_delta pieces, then the same blocks.
        single = {**ask, "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
        async with client.messages.stream(**single) as stream:
            final = await stream.get_final_message()
        assert upstream.bodies[-1]["parallel_tool_calls"] is False
        assert [(b.type, getattr(b, "name", None)) for b in final.content] == [
            ("tool_use", "get_weather")
        ]
        assert final.content[0].input == {"q": "Weather in Paris?", "i": 0}  # type: ignore[union-attr]
        assert final.stop_reason == "tool_use"
        outcome, replay = await events_of(root, single)
        assert outcome == "hit"
        deltas = [d["delta"]["type"] for n, d in replay if n == "content_block_delta"]
        assert deltas
        assert set(deltas) == {"input_json_delta"}
        # The results go back: each tool_result block a tool turn in OpenAI's shape.
        use = message.content[0]
        answer = await client.messages.create(
            model=MODEL,
            max_tokens=64,
            tools=[WEATHER, TIME],
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": use.id, "content": "18C"}  # type: ignore[union-attr]
                    ],
                },
            ],
        )
        assert answer.content[0].text == f"tool said 18C for {use.id}"  # type: ignore[union-attr]
        turns = upstream.bodies[-1]["messages"]
        assert turns[1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert turns[2] == {"role": "tool", "content": "18C", "tool_call_id": use.id}  # type: ignore[union-attr]


GOOD: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
BAD: dict[str, Any] = {
    "no max_tokens": {k: v for k, v in GOOD.items() if k != "max_tokens"},
    "max_tokens zero": {**GOOD, "max_tokens": 0},
    "no model": {k: v for k, v in GOOD.items() if k != "model"},
    "messages not a list": {**GOOD, "messages": "hi"},
    "no messages": {**GOOD, "messages": []},
    "system role": {**GOOD, "messages": [{"role": "system", "content": "x"}]},
    "content a number": {**GOOD, "messages": [{"role": "user", "content": 3}]},
    "block without type": {**GOOD, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
    "text block without text": {
        **GOOD,
        "messages": [{"role": "user", "content": [{"type": "text"}]}],
    },
    "image without source": {
        **GOOD,
        "messages": [{"role": "user", "content": [{"type": "image"}]}],
    },
    "tool_use in a user turn": {
        **GOOD,
        "messages": [
            {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
        ],
    },
    "tool_result without id": {
        **GOOD,
        "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}],
    },
    "tool input not an object": {
        **GOOD,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}],
            },
        ],
    },
    "system a number": {**GOOD, "system": 5},
    "system image": {**GOOD, "system": [{"type": "image", "source": {}}]},
    "temperature too high": {**GOOD, "temperature": 1.5},
    "top_p a string": {**GOOD, "top_p": "x"},
    "top_k negative": {**GOOD, "top_k": -1},
    "empty stop sequence": {**GOOD, "stop_sequences": [""]},
    "tools not a list": {**GOOD, "tools": {}},
    "tool without name": {**GOOD, "tools": [{"input_schema": {}}]},
    "tool_choice unknown": {**GOOD, "tool_choice": {"type": "sometimes"}},
    "tool_choice a string": {**GOOD, "tool_choice": "auto"},
    "stream a string": {**GOOD, "stream": "yes"},
    "metadata a list": {**GOOD, "metadata": []},
    "an OpenAI field": {**GOOD, "n": 2},
    "a deep body": {**GOOD, "thinking": json.loads("[" * 200 + "]" * 200)},
}


async def test_bad_input_is_a_400_in_anthropics_shape() -> None:
    async with door() as (upstream, _, root):
        async with httpx.AsyncClient() as http:
            for name, body in BAD.items():
                answer = await http.post(
                    f"{root}/v1/messages", json=body, headers={"x-api-key": KEY_A}
                )
                assert answer.status_code == 400, (name, answer.text)
                error = answer.json()
                assert error["type"] == "error", name
                assert error["error"]["type"] == "invalid_request_error", name
                assert error["error"]["message"], name
            for raw in (b"{", b"[]", b'"x"', b"\xff"):
                answer = await http.post(
                    f"{root}/v1/messages", content=raw, headers={"x-api-key": KEY_A}
                )
                assert answer.status_code == 400, raw
                assert answer.json()["error"]["type"] == "invalid_request_error"
            # No key, a wrong key, an unknown model: Anthropic's types for 401 and 404.
            for headers in ({}, {"x-api-key": "sk-wrong"}, {"authorization": "Bearer sk-no"}):
                answer = await http.post(f"{root}/v1/messages", json=GOOD, headers=headers)
                assert answer.status_code == 401
                assert answer.json()["error"]["type"] == "authentication_error"
            answer = await http.post(
                f"{root}/v1/messages",
                json={**GOOD, "model": "nope"},
                headers={"authorization": f"Bearer {KEY_A}", "anthropic-version": "2023-06-01"},
            )
            assert answer.status_code == 404
            assert answer.json()["error"]["type"] == "not_found_error"
            # Two keys are refused before any handler, still in Anthropic's shape.
            two_keys = [("x-api-key", KEY_A), ("x-api-key", KEY_A)]
            answer = await http.post(f"{root}/v1/messages", json=GOOD, headers=two_keys)
            assert answer.status_code == 400
            assert answer.json()["type"] == "error"
            assert answer.json()["error"]["type"] == "invalid_request_error"
            assert "x-api-key" in answer.json()["error"]["message"]
        assert upstream.calls == 0


@pytest.mark.parametrize("auth", ["api_key", "auth_token"])
async def test_both_ways_of_sending_the_key(auth: str) -> None:
    upstream = RichUpstream()
    async with serve(upstream.app) as upstream_url:
        provider = OpenAICompatibleProvider(f"{upstream_url}/v1", model=MODEL)
        async with proxy(provider) as base:
            client = AsyncAnthropic(
                base_url=base.removesuffix("/v1"), max_retries=0, **{auth: KEY_A}
            )
            async with client:
                message = await client.messages.create(**GOOD)
    assert message.content[0].text.startswith("echo 0: hi")  # type: ignore[union-attr]


async def test_what_an_openai_upstream_cannot_honour_is_a_400_naming_it() -> None:
    async with door() as (upstream, client, root):
        refused = {
            "thinking": {**GOOD, "thinking": {"type": "enabled", "budget_tokens": 1024}},
            "tools.0": {
                **GOOD,
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "mcp_servers": {**GOOD, "mcp_servers": [{"type": "url", "url": "https://x"}]},
        }
        async with httpx.AsyncClient() as http:
            for field, body in refused.items():
                for stream in (False, True):
                    answer = await http.post(
                        f"{root}/v1/messages",
                        json={**body, "stream": stream},
                        headers={"x-api-key": KEY_A},
                    )
                    assert answer.status_code == 400, (field, answer.text)
                    error = answer.json()["error"]
                    assert error["type"] == "invalid_request_error"
                    assert f"'{field}'" in error["message"]
                    assert "openai-compatible upstream" in error["message"]
        # Thinking turned off asks nothing of it.
        off = await client.messages.create(**GOOD, thinking={"type": "disabled"})
        assert off.content[0].text.startswith("echo 0: hi")  # type: ignore[union-attr]
        assert "thinking" not in upstream.bodies[-1]
        assert upstream.calls == 1
