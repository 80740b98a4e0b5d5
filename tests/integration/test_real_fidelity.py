"""The drop-in rule against the real model: llama-server + SmolLM2-135M behind the proxy.

The official openai SDK through ``vex-llm``'s proxy gets what llama-server itself would have
answered, field by field, JSON and streamed; a structured answer (llama-server enforces a
``json_schema`` with a grammar) parses into its pydantic model; every repeat is a hit that
leaves the server's own counters alone.

Tool calls are not tested here: SmolLM2's chat template has no tool support
(``/props`` says ``supports_tools: false``), so this llama-server (``--jinja`` is on by
default in its build) neither shows the model the tools nor constrains its answer, even with
``tool_choice: "required"``: SmolLM2 answers in prose. The ``tools`` shape below still checks
that a request carrying tools reaches the server as sent and comes back as it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from tests.server.conftest import KEY_A, make_settings, proxy
from vex_llm import OpenAICompatibleProvider
from vex_llm.local import LlamaServer

from .conftest import server_counter

pytestmark = pytest.mark.integration

TIMEOUT = 120  # generous: the machine's two cores are shared


class Person(BaseModel):
    name: str = Field(max_length=24)
    age: int


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PERSON_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "Person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
# Each request shape, as a body. ``cache_prompt`` is llama.cpp's own field, unknown to OpenAI:
# the proxy must pass it on as sent, and it shows when it does (llama-server otherwise reuses
# the previous identical request's prompt and says so in ``usage.prompt_tokens_details``).
SHAPES: dict[str, dict[str, Any]] = {
    "plain": {
        "messages": [{"role": "user", "content": "Name one colour."}],
        "max_tokens": 6,
    },
    "json_schema": {
        "messages": [{"role": "user", "content": "Describe a person as JSON."}],
        "response_format": PERSON_FORMAT,
        "max_tokens": 8,
    },
    "tools required": {
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 6,
    },
}
# What differs between two identical requests to llama-server, whoever sends them: ``id``
# (random per answer), ``created`` (the clock; per event in a stream) and ``timings`` (measured
# durations, and prompt-cache counts that depend on the slot's history). Nothing else is
# ignored: not ``system_fingerprint``, ``model``, ``usage`` or any choice field.
VOLATILE = ("id", "created", "timings")


def _steady(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


def _body(llama: LlamaServer, shape: str, **more: Any) -> dict[str, Any]:
    return {
        "model": llama.alias,
        "temperature": 0,
        "cache_prompt": False,
        **SHAPES[shape],
        **more,
    }


@contextlib.asynccontextmanager
async def through_proxy(llama: LlamaServer, keepalive: bool = False) -> AsyncIterator[str]:
    """The proxy in front of ``llama`` (as the model ``llama.alias``); yields its /v1 URL.

    Without ``keepalive`` the provider opens a connection per request: llama-server closes a
    connection after some streamed answers without saying so, and the next request on it fails
    (see ``test_a_request_after_a_streamed_miss_is_answered``).
    """
    limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits) as http:
        provider = OpenAICompatibleProvider(
            llama.base_url, model=llama.alias, http_client=http, timeout=TIMEOUT
        )
        async with proxy(provider, make_settings({llama.alias: llama.alias})) as url:
            yield url


def _fresh_connections() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0))


async def _hits(url: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = await client.get(f"{url}/cache/stats", headers={"authorization": f"Bearer {KEY_A}"})
    hits: int = stats.json()["hits"]
    return hits


async def _work(llama: LlamaServer) -> tuple[float, float]:
    """What the server has done so far: prompt tokens read, tokens generated."""
    return (
        await server_counter(llama, "prompt_tokens_total"),
        await server_counter(llama, "tokens_predicted_total"),
    )


async def test_structured_answer_parses_into_the_schema_and_repeats_as_a_hit(
    llama: LlamaServer,
) -> None:
    options: dict[str, Any] = {
        "model": llama.alias,
        "messages": [{"role": "user", "content": "Describe a person as JSON."}],
        "response_format": Person,
        "temperature": 0,
        "max_tokens": 48,
    }
    async with (
        through_proxy(llama) as url,
        openai.AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT) as client,
    ):
        first = await client.chat.completions.with_raw_response.parse(**options)
        work = await _work(llama)
        second = await client.chat.completions.with_raw_response.parse(**options)
        async with client.chat.completions.stream(**options) as stream:
            streamed = await stream.get_final_completion()
        assert await _work(llama) == work  # the server did nothing for the repeats
        assert await _hits(url) == 2
    assert (first.headers["x-vex-cache"], second.headers["x-vex-cache"]) == ("miss", "hit")
    a, b = first.parse(), second.parse()
    parsed = a.choices[0].message.parsed
    assert isinstance(parsed, Person)  # SmolLM2's answer, held to the schema by the grammar
    assert parsed.name
    assert b.choices[0].message.parsed == parsed
    assert second.http_response.json() == first.http_response.json()  # id and all
    assert streamed.choices[0].message.parsed == parsed
    assert streamed.choices[0].message.content == a.choices[0].message.content
    assert streamed.id == a.id


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_json_answer_equals_llama_servers_own_and_repeats_as_a_hit(
    llama: LlamaServer, shape: str
) -> None:
    body = _body(llama, shape)
    async with through_proxy(llama) as url, _fresh_connections() as http:
        direct = await http.post(f"{llama.base_url}/chat/completions", json=body)
        auth = {"authorization": f"Bearer {KEY_A}"}
        miss = await http.post(f"{url}/chat/completions", json=body, headers=auth)
        work = await _work(llama)
        hit = await http.post(f"{url}/chat/completions", json=body, headers=auth)
        assert await _work(llama) == work
    assert direct.status_code == miss.status_code == hit.status_code == 200, miss.text
    assert (miss.headers["x-vex-cache"], hit.headers["x-vex-cache"]) == ("miss", "hit")
    answer = miss.json()
    assert _steady(answer) == _steady(direct.json())
    assert answer["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}  # cache_prompt arrived
    assert hit.json() == answer  # the miss's answer as it was, id and created included


async def _events(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], **headers: str
) -> tuple[str | None, list[dict[str, Any]]]:
    """A stream's ``x-vex-cache`` header and its events, ``[DONE]`` checked and left out."""
    async with http.stream("POST", f"{url}/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        lines = [line async for line in r.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    return r.headers.get("x-vex-cache"), [json.loads(line[6:]) for line in lines[:-1]]


@pytest.mark.parametrize(
    ("shape", "usage"), [("plain", False), ("json_schema", True), ("tools required", True)]
)
async def test_stream_equals_llama_servers_own_and_replays_as_a_hit(
    llama: LlamaServer, shape: str, usage: bool
) -> None:
    body = _body(llama, shape, stream=True)
    if usage:
        body["stream_options"] = {"include_usage": True}
    auth = f"Bearer {KEY_A}"
    async with through_proxy(llama) as url, _fresh_connections() as http:
        _, direct = await _events(http, llama.base_url, body)
        outcome, miss = await _events(http, url, body, authorization=auth)
        work = await _work(llama)
        replay, hit = await _events(http, url, body, authorization=auth)
        assert await _work(llama) == work
    assert (outcome, replay) == ("miss", "hit")
    assert [_steady(e) for e in miss] == [_steady(e) for e in direct]  # event for event
    assert len(miss) > 3  # token by token, not one blob
    assert ("usage" in miss[-1]) is usage
    assert hit == miss  # replayed event for event, ids and all


async def test_a_request_after_a_streamed_miss_is_answered(llama: LlamaServer) -> None:
    """The proxy's provider keeps connections alive, as it should; llama-server sometimes
    closes one after a streamed answer without a ``Connection: close``, and the next request
    sent on it gets no response at all ("Server disconnected without sending a response").
    Nothing was answered, so the provider can send it again on a fresh connection; a client
    must not get a 502 for it."""
    async with (
        through_proxy(llama, keepalive=True) as url,
        openai.AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT) as client,
    ):
        for i in range(12):
            options: dict[str, Any] = {
                "model": llama.alias,
                "temperature": 0,
                "max_tokens": 2,
                "messages": [{"role": "user", "content": f"Say the number {i}."}],
            }
            stream = await client.chat.completions.create(**options, stream=True)
            assert [event async for event in stream]
            options["messages"] = [{"role": "user", "content": f"Say the letter {i}."}]
            answer = await client.chat.completions.create(**options)
            assert answer.choices


_EVENT: dict[str, Any] = {
    "id": "chatcmpl-s",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
}
_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-j",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


class ClosesAfterStreams:
    """llama-server's connection habit, made deterministic: it advertises keep-alive, answers a
    stream (chunked) and then closes the connection; here the close comes just as the next
    request arrives on it, which is the race a busy machine loses now and then."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        streamed = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if streamed:
                    return  # the close that loses the race: the request gets no answer
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                doc = json.loads(await reader.readexactly(length))
                if doc.get("stream"):
                    streamed = True
                    sse = b"data: " + json.dumps(_EVENT).encode() + b"\n\ndata: [DONE]\n\n"
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                        b"keep-alive: timeout=5, max=100\r\ntransfer-encoding: chunked\r\n\r\n"
                        + f"{len(sse):x}\r\n".encode()
                        + sse
                        + b"\r\n0\r\n\r\n"
                    )
                else:
                    body = json.dumps(_ANSWER).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_request_on_a_connection_closed_after_a_stream_is_sent_again() -> None:
    """Deterministic twin of ``test_a_request_after_a_streamed_miss_is_answered``: the request
    got no response at all, so nothing was answered and it can go again on a new connection."""
    fake = ClosesAfterStreams()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAICompatibleProvider(f"http://127.0.0.1:{port}/v1", model="m")
    try:
        async with (
            proxy(provider, make_settings({"m": "m"})) as url,
            openai.AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0) as client,
        ):
            messages: Any = [{"role": "user", "content": "one"}]
            stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
            assert [event async for event in stream]
            messages = [{"role": "user", "content": "two"}]
            answer = await client.chat.completions.create(model="m", messages=messages)
    finally:
        server.close()
        await server.wait_closed()
    assert answer.choices[0].message.content == "ok"
    assert fake.connections == 2
