"""The drop-in rule, end to end with the official openai SDK: through the proxy, every request
shape of the Chat Completions API reaches the upstream as sent and comes back as the upstream
answered it — field by field equal to asking the upstream directly — and a repeat is a hit
that never reaches the upstream, JSON and streamed, and across the two.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from vex_llm import OpenAICompatibleProvider

from .conftest import KEY_A, KEY_B, MODEL, proxy, serve
from .rich_upstream import RichUpstream

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
        "strict": True,
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
USAGE: Any = {"include_usage": True}
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake pixel").decode()

# Every request shape the issue names, as the SDK sends it.
SHAPES: dict[str, dict[str, Any]] = {
    "tools auto": {"messages": ASK, "tools": [WEATHER], "tool_choice": "auto"},
    "tool named": {
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    },
    "tools required, parallel": {
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "tool_choice": "required",
        "parallel_tool_calls": True,
    },
    "tool results turn": {
        "messages": [
            *ASK,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        ],
        "tools": [WEATHER],
    },
    "json_object": {
        "messages": [{"role": "user", "content": "Reply in JSON."}],
        "response_format": {"type": "json_object"},
    },
    "n=2": {"messages": [{"role": "user", "content": "Two answers."}], "n": 2},
    "logprobs": {
        "messages": [{"role": "user", "content": "Be sure."}],
        "logprobs": True,
        "top_logprobs": 1,
    },
    "image part": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
                ],
            }
        ]
    },
    "unknown and unkeyed fields": {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hi", "name": "ann"},
        ],
        "max_completion_tokens": 50,
        "user": "u-1",
        "metadata": {"app": "test"},
        "store": False,
        "service_tier": "auto",
        "prompt_cache_key": "pck",
        "safety_identifier": "sid",
        "verbosity": "low",
        "extra_body": {"top_k": 5, "x_vendor": {"a": [1, 2]}},
    },
    "long document": {
        "messages": [
            {"role": "system", "content": "S" * 12 * 1024},
            {"role": "user", "content": "D" * 120 * 1024},
        ]
    },
}


class Weather(BaseModel):
    city: str
    degrees: int


@contextlib.asynccontextmanager
async def clients(
    api_key: str | None = None,
) -> AsyncIterator[tuple[RichUpstream, AsyncOpenAI, AsyncOpenAI]]:
    """The fake upstream, a client straight to it, and a client through the proxy (whose
    provider sends ``api_key`` upstream, if given)."""
    upstream = RichUpstream()
    async with serve(upstream.app) as upstream_url:
        provider = OpenAICompatibleProvider(f"{upstream_url}/v1", api_key, model=MODEL)
        async with proxy(provider) as proxy_url:
            direct = AsyncOpenAI(base_url=f"{upstream_url}/v1", api_key="sk-upstream")
            via = AsyncOpenAI(base_url=proxy_url, api_key=KEY_A, max_retries=0)
            async with direct, via:
                yield upstream, direct, via


def _request(shape: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, **shape}


def _calls(message: Any) -> list[tuple[str, str, str]]:
    return [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]


def _travel_free(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


@pytest.mark.parametrize("name", list(SHAPES))
async def test_json_answer_equals_the_upstreams_and_repeats_as_a_hit(name: str) -> None:
    request = _request(SHAPES[name])
    async with clients() as (upstream, direct, via):
        first_direct = await direct.chat.completions.with_raw_response.create(**request)
        sent_direct = upstream.bodies[-1]
        miss = await via.chat.completions.with_raw_response.create(**request)
        sent_via = upstream.bodies[-1]
        # The upstream got the same request either way: every field, nothing added.
        assert sent_via == sent_direct
        assert miss.headers["x-vex-cache"] == "miss"
        assert miss.headers["x-request-id"] == "req_rich"  # the upstream's, passed on
        expected = json.loads(first_direct.http_response.text)
        assert json.loads(miss.http_response.text) == expected
        calls = upstream.calls
        hit = await via.chat.completions.with_raw_response.create(**request)
        assert upstream.calls == calls
        assert hit.headers["x-vex-cache"] == "hit"
        assert "x-request-id" not in hit.headers  # no upstream request was made
        assert json.loads(hit.http_response.text) == expected  # id and created included


async def _chunks(client: AsyncOpenAI, request: dict[str, Any]) -> tuple[list[Any], str]:
    raw = await client.chat.completions.with_raw_response.create(**request, stream=True)
    stream = raw.parse()
    return [c.model_dump() async for c in stream], raw.headers.get("x-vex-cache", "")


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("options", [None, {"include_usage": True, "include_obfuscation": True}])
async def test_stream_equals_the_upstreams_chunk_for_chunk_and_replays(
    name: str, options: dict[str, Any] | None
) -> None:
    request = _request(SHAPES[name])
    if options is not None:
        request["stream_options"] = options
    async with clients() as (upstream, direct, via):
        expected, _ = await _chunks(direct, request)
        sent_direct = upstream.bodies[-1]
        got, outcome = await _chunks(via, request)
        # The proxy asks for usage on every stream (to count tokens) and sends the usage
        # chunk on only to clients that asked for it; everything else is as the client sent.
        assert _travel_free(upstream.bodies[-1]) == _travel_free(sent_direct)
        assert upstream.bodies[-1]["stream_options"] == {**(options or {}), "include_usage": True}
        assert (outcome, got) == ("miss", expected)
        calls = upstream.calls
        replay, outcome = await _chunks(via, request)
        assert (outcome, replay, upstream.calls) == ("hit", expected, calls)


@pytest.mark.parametrize("name", ["tools required, parallel", "logprobs", "n=2", "json_object"])
async def test_a_stream_hit_from_a_json_answer_and_a_json_hit_from_a_stream(name: str) -> None:
    request = _request(SHAPES[name])
    async with clients() as (upstream, _, via):
        answer = await via.chat.completions.create(**request)
        async with via.chat.completions.stream(**request, stream_options=USAGE) as stream:
            streamed = await stream.get_final_completion()
        assert upstream.calls == 1  # the stream was a hit on the JSON answer
        for mine, theirs in zip(streamed.choices, answer.choices, strict=True):
            assert mine.message.content == theirs.message.content
            assert _calls(mine.message) == _calls(theirs.message)
            assert mine.finish_reason == theirs.finish_reason
            if theirs.logprobs is not None:
                assert mine.logprobs == theirs.logprobs
        assert streamed.usage == answer.usage

    async with clients() as (upstream, _, via):
        async with via.chat.completions.stream(**request, stream_options=USAGE) as stream:
            streamed = await stream.get_final_completion()
        raw = await via.chat.completions.with_raw_response.create(**request)
        assert raw.headers["x-vex-cache"] == "hit"
        assert upstream.calls == 1
        answer = raw.parse()
        for mine, theirs in zip(answer.choices, streamed.choices, strict=True):
            assert mine.message.content == theirs.message.content
            assert _calls(mine.message) == _calls(theirs.message)  # assembled from deltas
            assert mine.finish_reason == theirs.finish_reason
            assert mine.logprobs == theirs.logprobs  # joined
        assert answer.usage == streamed.usage
        assert answer.system_fingerprint == "fp_rich"


async def test_parse_with_a_pydantic_model_is_answered_and_cached() -> None:
    messages = [{"role": "user", "content": "Weather in Oslo as JSON."}]
    async with clients() as (upstream, _, via):
        first = await via.chat.completions.parse(
            model=MODEL, messages=messages, response_format=Weather
        )
        again = await via.chat.completions.parse(
            model=MODEL, messages=messages, response_format=Weather
        )
        assert upstream.calls == 1
        sent = upstream.bodies[0]["response_format"]
        assert sent["type"] == "json_schema"
        assert list(sent["json_schema"]["schema"]["properties"]) == ["city", "degrees"]
    assert first.choices[0].message.parsed == Weather(city="x", degrees=7)
    assert again.choices[0].message.parsed == first.choices[0].message.parsed


async def test_keyed_fields_miss_and_unkeyed_fields_hit_through_the_proxy() -> None:
    base = _request(SHAPES["tools auto"])
    keyed = [
        {"tools": [WEATHER, TIME]},
        {"tool_choice": "required"},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "json_object"}},
        {"n": 2},
        {"logprobs": True},
        {"extra_body": {"top_k": 3}},
        {"extra_body": {"reasoning_effort": "low"}},
        {"messages": [{"role": "user", "content": "Weather in Paris?", "name": "bob"}]},
    ]
    unkeyed = [
        {"user": "someone"},
        {"metadata": {"k": "v"}},
        {"store": True},
        {"service_tier": "flex"},
        {"extra_body": {"prompt_cache_key": "p", "safety_identifier": "s"}},
    ]
    async with clients() as (upstream, _, via):
        await via.chat.completions.create(**base)
        for change in keyed:
            raw = await via.chat.completions.with_raw_response.create(**{**base, **change})
            assert raw.headers["x-vex-cache"] == "miss", change
        for change in unkeyed:
            raw = await via.chat.completions.with_raw_response.create(**{**base, **change})
            assert raw.headers["x-vex-cache"] == "hit", change
        assert upstream.calls == 1 + len(keyed)


async def test_tenants_never_share_a_tool_answer() -> None:
    request = _request(SHAPES["tools auto"])
    async with clients() as (upstream, _, via):
        await via.chat.completions.create(**request)
        other = AsyncOpenAI(base_url=str(via.base_url), api_key=KEY_B, max_retries=0)
        async with other:
            raw = await other.chat.completions.with_raw_response.create(**request)
        assert raw.headers["x-vex-cache"] == "miss"
        assert upstream.calls == 2


@pytest.mark.parametrize("n", [1, 2])
async def test_scrubbing_the_upstream_key_loses_no_text(n: int) -> None:
    """With an upstream key, text that might begin the key ("s" for "sk-...") is held back
    until the next piece shows it is not the key: it moves, it is never lost (not even at
    the end of a choice), and it stays in its own choice."""
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Paris"}],  # answered "echo i: Paris"
        "n": n,
        "stream_options": USAGE,
    }
    async with clients(api_key="sk-upstream-0123456789") as (_, direct, via):
        expected, _ = await _chunks(direct, request)
        got, _ = await _chunks(via, request)
        replay, outcome = await _chunks(via, request)

    def texts(chunks: list[Any]) -> dict[int, str]:
        joined: dict[int, str] = {}
        for chunk in chunks:
            for choice in chunk["choices"]:
                text = choice["delta"].get("content") or ""
                joined[choice["index"]] = joined.get(choice["index"], "") + text
        return joined

    assert all(t.endswith("Paris") for t in texts(expected).values())
    assert texts(got) == texts(expected)
    assert (outcome, texts(replay)) == ("hit", texts(expected))
