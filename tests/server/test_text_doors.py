"""``/v1/completions`` and ``/v1/responses`` end to end with the official openai SDK.

The drop-in rule as for chat (``test_fidelity``): through the proxy, a request reaches the
upstream as sent and comes back as the upstream answered it — compared field by field with
asking the upstream directly — and a repeat is a hit that never reaches the upstream, JSON
and streamed, and across the two. Requests that depend on the upstream's state bypass the
cache; bad input is a 400 naming the field; an upstream that cannot serve the API is a 400
naming it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from vex_llm import MockProvider, OpenAICompatibleProvider

from .conftest import KEY_A, MODEL, proxy, serve
from .text_upstream import TextUpstream

COMPLETIONS: dict[str, dict[str, Any]] = {
    "string prompt": {"prompt": "def add(a, b):"},
    "prompts, n=2": {"prompt": ["one", "two"], "n": 2, "max_tokens": 3},
    "suffix, echo, logprobs, stop": {
        "prompt": "def f(x):\n",
        "suffix": "\n    return y",
        "echo": True,
        "logprobs": 2,
        "stop": ["\n\n", "###"],
        "temperature": 0,
        "seed": 7,
    },
    "token prompt, unknown fields": {
        "prompt": [1, 2, 3],
        "user": "u-1",
        "best_of": 1,
        "extra_body": {"top_k": 5, "cache_prompt": False},
    },
}

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
RESPONSES: dict[str, dict[str, Any]] = {
    "string input": {"input": "Say hi."},
    "items and instructions": {
        "input": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": [{"type": "input_text", "text": "And now?"}]},
        ],
        "instructions": "Be brief.",
        "temperature": 0.2,
        "store": False,
    },
    "tools": {"input": "Weather in Oslo?", "tools": [WEATHER], "tool_choice": "auto"},
    "text.format json_schema": {
        "input": "Weather as JSON.",
        "text": {
            "format": {
                "type": "json_schema",
                "name": "weather",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                    "required": ["city", "degrees"],
                    "additionalProperties": False,
                },
                "strict": True,
            }
        },
    },
    "reasoning, incomplete": {
        "input": "Think.",
        "reasoning": {"effort": "low"},
        "max_output_tokens": 3,
        "metadata": {"app": "t"},
    },
}


@contextlib.asynccontextmanager
async def clients() -> AsyncIterator[tuple[TextUpstream, AsyncOpenAI, AsyncOpenAI]]:
    """The fake upstream, a client straight to it, and a client through the proxy."""
    upstream = TextUpstream()
    async with serve(upstream.app) as upstream_url:
        provider = OpenAICompatibleProvider(f"{upstream_url}/v1", model=MODEL)
        async with proxy(provider) as proxy_url:
            direct = AsyncOpenAI(base_url=f"{upstream_url}/v1", api_key="sk-upstream")
            via = AsyncOpenAI(base_url=proxy_url, api_key=KEY_A, max_retries=0)
            async with direct, via:
                yield upstream, direct, via


def _unparsed(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")
        }
    if isinstance(value, list):
        return [_unparsed(v) for v in value]
    return value


def _travel_free(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


# -- /v1/completions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMPLETIONS))
async def test_completion_equals_the_upstreams_and_repeats_as_a_hit(name: str) -> None:
    request = {"model": MODEL, **COMPLETIONS[name]}
    async with clients() as (upstream, direct, via):
        first = await direct.completions.with_raw_response.create(**request)
        sent_direct = upstream.bodies[-1]
        miss = await via.completions.with_raw_response.create(**request)
        assert upstream.bodies[-1] == sent_direct
        assert miss.headers["x-vex-cache"] == "miss"
        assert miss.headers["x-request-id"] == "req_text"
        expected = json.loads(first.http_response.text)
        assert json.loads(miss.http_response.text) == expected
        hit = await via.completions.with_raw_response.create(**request)
        assert (hit.headers["x-vex-cache"], upstream.calls) == ("hit", 2)
        assert json.loads(hit.http_response.text) == expected
        assert hit.parse().choices[0].text == expected["choices"][0]["text"]


async def _completion_chunks(client: AsyncOpenAI, request: dict[str, Any]) -> tuple[list[Any], str]:
    raw = await client.completions.with_raw_response.create(**request, stream=True)
    return [c.model_dump() async for c in raw.parse()], raw.headers.get("x-vex-cache", "")


@pytest.mark.parametrize("name", list(COMPLETIONS))
@pytest.mark.parametrize("usage", [False, True])
async def test_completion_stream_equals_the_upstreams_and_replays(name: str, usage: bool) -> None:
    request = {"model": MODEL, **COMPLETIONS[name]}
    if usage:
        request["stream_options"] = {"include_usage": True}
    async with clients() as (upstream, direct, via):
        expected, _ = await _completion_chunks(direct, request)
        sent_direct = upstream.bodies[-1]
        got, outcome = await _completion_chunks(via, request)
        # Usage is always asked for (to count tokens), and passed on only when asked for.
        assert _travel_free(upstream.bodies[-1]) == _travel_free(sent_direct)
        assert upstream.bodies[-1]["stream_options"] == {"include_usage": True}
        assert (outcome, got) == ("miss", expected)
        replay, outcome = await _completion_chunks(via, request)
        assert (outcome, replay, upstream.calls) == ("hit", expected, 2)


async def test_a_completion_json_hit_from_a_stream_and_a_stream_hit_from_json() -> None:
    request = {"model": MODEL, **COMPLETIONS["suffix, echo, logprobs, stop"]}
    async with clients() as (upstream, direct, via):
        expected = json.loads((await direct.completions.with_raw_response.create(**request)).text)
        await _completion_chunks(via, request)
        raw = await via.completions.with_raw_response.create(**request)
        assert raw.headers["x-vex-cache"] == "hit"
        # Assembled from the stream: text and log-probabilities joined, usage included.
        assert json.loads(raw.http_response.text) == expected
        assert upstream.calls == 2

    request = {"model": MODEL, **COMPLETIONS["prompts, n=2"]}
    async with clients() as (upstream, _, via):
        answer = await via.completions.create(**request)
        chunks, outcome = await _completion_chunks(
            via, {**request, "stream_options": {"include_usage": True}}
        )
        assert (outcome, upstream.calls) == ("hit", 1)
        texts = {i: "" for i in range(len(answer.choices))}
        for chunk in chunks:
            for choice in chunk["choices"]:
                texts[choice["index"]] += choice["text"]
        assert texts == {c.index: c.text for c in answer.choices}
        assert chunks[-1]["usage"] == answer.usage.model_dump()


async def test_completion_keyed_and_unkeyed_fields() -> None:
    base = {"model": MODEL, "prompt": "x = "}
    async with clients() as (upstream, _, via):
        await via.completions.create(**base)
        for change in ({"suffix": "y"}, {"echo": True}, {"logprobs": 1}, {"prompt": "x ="}):
            raw = await via.completions.with_raw_response.create(**{**base, **change})
            assert raw.headers["x-vex-cache"] == "miss", change
        raw = await via.completions.with_raw_response.create(**base, user="someone")
        assert raw.headers["x-vex-cache"] == "hit"
        # A chat request with the same fields is another question.
        assert upstream.calls == 5


# -- /v1/responses -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RESPONSES))
async def test_response_equals_the_upstreams_and_repeats_as_a_hit(name: str) -> None:
    request = {"model": MODEL, **RESPONSES[name]}
    async with clients() as (upstream, direct, via):
        first = await direct.responses.with_raw_response.create(**request)
        sent_direct = upstream.bodies[-1]
        miss = await via.responses.with_raw_response.create(**request)
        assert upstream.bodies[-1] == sent_direct
        assert miss.headers["x-vex-cache"] == "miss"
        assert miss.headers["x-request-id"] == "req_text"
        expected = json.loads(first.http_response.text)
        assert json.loads(miss.http_response.text) == expected
        hit = await via.responses.with_raw_response.create(**request)
        assert (hit.headers["x-vex-cache"], upstream.calls) == ("hit", 2)
        assert json.loads(hit.http_response.text) == expected
        assert hit.parse().output_text == first.parse().output_text


async def _events(client: AsyncOpenAI, request: dict[str, Any]) -> tuple[list[Any], str]:
    raw = await client.responses.with_raw_response.create(**request, stream=True)
    return [e.model_dump() async for e in raw.parse()], raw.headers.get("x-vex-cache", "")


@pytest.mark.parametrize("name", list(RESPONSES))
async def test_response_stream_equals_the_upstreams_event_for_event_and_replays(name: str) -> None:
    request = {"model": MODEL, **RESPONSES[name]}
    async with clients() as (upstream, direct, via):
        expected, _ = await _events(direct, request)
        sent_direct = upstream.bodies[-1]
        got, outcome = await _events(via, request)
        assert upstream.bodies[-1] == sent_direct
        assert (outcome, got) == ("miss", expected)
        replay, outcome = await _events(via, request)
        assert (outcome, replay, upstream.calls) == ("hit", expected, 2)


async def test_the_event_names_travel_on_the_event_lines() -> None:
    request = {"model": MODEL, "input": "hi", "stream": True}
    async with clients() as (_, __, via):
        for _round in range(2):  # miss, then hit
            async with httpx.AsyncClient() as http:
                raw = await http.post(
                    f"{via.base_url}responses",
                    json=request,
                    headers={"authorization": f"Bearer {KEY_A}"},
                )
            blocks = [b for b in raw.text.split("\n\n") if b]
            for block in blocks:
                name, data = block.split("\n")
                assert name == "event: " + json.loads(data.removeprefix("data: "))["type"]
            assert blocks[-1].startswith("event: response.completed")


@pytest.mark.parametrize("name", ["tools", "text.format json_schema", "reasoning, incomplete"])
async def test_a_response_json_hit_from_a_stream_and_a_stream_hit_from_json(name: str) -> None:
    request = {"model": MODEL, **RESPONSES[name]}
    async with clients() as (upstream, direct, via):
        expected = json.loads((await direct.responses.with_raw_response.create(**request)).text)
        await _events(via, request)
        raw = await via.responses.with_raw_response.create(**request)
        assert raw.headers["x-vex-cache"] == "hit"
        assert json.loads(raw.http_response.text) == expected  # response.completed's response
        assert upstream.calls == 2

    async with clients() as (upstream, _, via):
        answer = await via.responses.create(**request)
        async with via.responses.stream(**request) as stream:
            last = [event async for event in stream][-1]
        assert upstream.calls == 1  # the stream was a hit on the JSON answer
        assert last.type == f"response.{answer.status}"
        streamed = last.response  # type: ignore[union-attr]
        assert streamed.output_text == answer.output_text
        # The same response (the stream helper adds what it parsed of the JSON it got).
        assert _unparsed(streamed.model_dump()) == answer.model_dump()


async def test_stateful_responses_bypass_the_cache() -> None:
    stateful = [
        {"previous_response_id": "resp_earlier"},
        {"conversation": "conv_1"},
        {"background": True},
        {"input": [{"type": "item_reference", "id": "msg_stored"}]},
    ]
    async with clients() as (upstream, _, via):
        for change in stateful:
            request = {"model": MODEL, "input": "Go on.", **change}
            for _round in range(2):
                raw = await via.responses.with_raw_response.create(**request)
                assert raw.headers["x-vex-cache"] == "bypass", change
            events, outcome = await _events(via, request)
            assert outcome == "bypass"
            assert events[-1]["type"] == "response.completed"
        assert upstream.calls == 3 * len(stateful)
        # ``store`` asks the upstream to keep a copy; the answer is the same: not keyed.
        await via.responses.create(model=MODEL, input="Hi.", store=True)
        raw = await via.responses.with_raw_response.create(model=MODEL, input="Hi.", store=False)
        assert raw.headers["x-vex-cache"] == "hit"


# -- errors ------------------------------------------------------------------------------

BAD: list[tuple[str, dict[str, Any], str | None]] = [
    ("completions", {"model": MODEL}, "prompt"),
    ("completions", {"model": MODEL, "prompt": {"a": 1}}, "prompt"),
    ("completions", {"model": MODEL, "prompt": ["a", 1]}, "prompt"),
    ("completions", {"model": MODEL, "prompt": "a", "logprobs": True}, "logprobs"),
    ("completions", {"model": MODEL, "prompt": "a", "n": 0}, "n"),
    ("completions", {"model": MODEL, "prompt": "a", "echo": "yes"}, "echo"),
    ("completions", {"model": MODEL, "prompt": "a", "stop": 5}, "stop"),
    ("completions", {"prompt": "a"}, "model"),
    ("completions", [1, 2], None),
    ("responses", {"model": MODEL}, "input"),
    ("responses", {"model": MODEL, "input": 5}, "input"),
    ("responses", {"model": MODEL, "input": ["hi"]}, "input[0]"),
    ("responses", {"model": MODEL, "input": "a", "tools": [{"name": "f"}]}, "tools"),
    ("responses", {"model": MODEL, "input": "a", "text": {"format": "json"}}, "text.format"),
    ("responses", {"model": MODEL, "input": "a", "temperature": 3}, "temperature"),
    ("responses", {"model": MODEL, "input": "a", "reasoning": "high"}, "reasoning"),
    ("responses", {"model": MODEL, "input": "a", "background": "yes"}, "background"),
    ("responses", {"model": 7, "input": "a"}, "model"),
]


@pytest.mark.parametrize(("door", "body", "param"), BAD)
async def test_bad_input_is_a_400_naming_the_field(door: str, body: Any, param: str | None) -> None:
    async with clients() as (upstream, _, via), httpx.AsyncClient() as http:
        raw = await http.post(
            f"{via.base_url}{door}", json=body, headers={"authorization": f"Bearer {KEY_A}"}
        )
        assert raw.status_code == 400, raw.text
        error = raw.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert upstream.calls == 0
        not_json = await http.post(
            f"{via.base_url}{door}", content=b"{", headers={"authorization": f"Bearer {KEY_A}"}
        )
        assert not_json.status_code == 400


@pytest.mark.parametrize(
    ("door", "body"),
    [("completions", {"prompt": "a"}), ("responses", {"input": "a"})],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_that_cannot_serve_the_api_is_a_400_naming_it(
    door: str, body: dict[str, Any], stream: bool
) -> None:
    mock = MockProvider()
    async with proxy(mock) as base, httpx.AsyncClient() as http:
        raw = await http.post(
            f"{base}/{door}",
            json={"model": MODEL, **body, "stream": stream},
            headers={"authorization": f"Bearer {KEY_A}"},
        )
    assert raw.status_code == 400, raw.text
    assert "mock" in raw.json()["error"]["message"]
    assert mock.calls == 0


async def test_unknown_model_and_tenant_as_for_chat() -> None:
    async with clients() as (_, __, via), httpx.AsyncClient() as http:
        for door, body in (("completions", {"prompt": "a"}), ("responses", {"input": "a"})):
            raw = await http.post(
                f"{via.base_url}{door}",
                json={"model": "nope", **body},
                headers={"authorization": f"Bearer {KEY_A}"},
            )
            assert (raw.status_code, raw.json()["error"]["param"]) == (404, "model")
            raw = await http.post(f"{via.base_url}{door}", json={"model": MODEL, **body})
            assert raw.status_code == 401
