"""AnthropicProvider against a loopback server speaking the Messages API."""

from __future__ import annotations

import json

import pytest

from vex_llm import (
    AnthropicProvider,
    InvalidResponse,
    LLMRequest,
    Message,
    RateLimited,
    ServerError,
    Timeout,
    Usage,
    cache_key,
)
from vex_llm.errors import UnsupportedFeature

from .fakes import LoopbackServer, Reply, json_reply, sse

KEY = "sk-ant-test-key"

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
    "stop_reason": "max_tokens",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 2},
}

EVENTS = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                **MESSAGE,
                "content": [],
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " there"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def stream_body(events: list[tuple[str, object]]) -> list[bytes | float]:
    return sse(*(doc for _, doc in events), event_names=[name for name, _ in events])


async def test_complete_sends_headers_and_top_level_system() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(MESSAGE)) as server,
        AnthropicProvider(KEY, "claude-x", server.url, max_tokens_default=77) as p,
    ):
        request = LLMRequest(
            prompt="hi",
            system="be terse",
            messages=(Message("developer", "no jokes"), Message("assistant", "ok")),
            temperature=0.5,
            top_p=0.8,
            stop=("END",),
        )
        response = await p.complete(request)
    assert response.content == "Hi there"
    assert response.usage == Usage(12, 2)
    assert response.finish_reason == "length"
    (recorded,) = server.requests
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == KEY
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.json() == {
        "model": "claude-x",
        "max_tokens": 77,
        "system": "be terse\n\nno jokes",
        "messages": [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "top_p": 0.8,
        "stop_sequences": ["END"],
    }


async def test_stream_keeps_every_event_and_ends_with_a_terminal_chunk() -> None:
    async with (
        LoopbackServer(lambda r: Reply(body=stream_body(EVENTS))) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        chunks = [c async for c in provider.stream(LLMRequest(prompt="hi", max_tokens=5))]
    *events, last = chunks
    # One chunk per event, each keeping its data and SSE event name for a faithful relay.
    assert [c.raw_event for c in events] == [name for name, _ in EVENTS]
    assert [json.loads(c.raw or "") for c in events] == [doc for _, doc in EVENTS]
    assert {c.raw_format for c in events} == {"anthropic.messages"}
    assert [c.delta for c in events if c.delta] == ["Hi", " there"]
    assert not any(c.is_final for c in events)
    assert (last.raw, last.finish_reason, last.usage) == (None, "stop", Usage(12, 15))
    assert last.model == "claude-test"
    assert server.requests[0].json()["stream"] is True
    assert server.requests[0].json()["max_tokens"] == 5


@pytest.mark.parametrize(
    ("events", "error", "match"),
    [
        (EVENTS[:-1], InvalidResponse, "message_stop"),
        (EVENTS[1:], InvalidResponse, "before message_start"),
        (
            [
                *EVENTS[:4],
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                ),
            ],
            ServerError,
            "Overloaded",
        ),
        (
            [
                EVENTS[0],
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "rate_limit_error", "message": "slow down"},
                    },
                ),
            ],
            RateLimited,
            "slow down",
        ),
    ],
)
async def test_broken_streams_raise_typed_errors(
    events: list[tuple[str, object]], error: type[Exception], match: str
) -> None:
    async with (
        LoopbackServer(lambda r: Reply(body=stream_body(events))) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        with pytest.raises(error, match=match):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


@pytest.mark.parametrize(
    "doc",
    [
        {**MESSAGE, "content": []},
        {**MESSAGE, "content": [{"type": "tool_use", "name": "f", "input": {}}]},
        {**MESSAGE, "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        {"type": "message"},
        {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
    ],
)
async def test_malformed_messages_are_invalid(doc: dict[str, object]) -> None:
    async with (
        LoopbackServer(lambda r: json_reply(doc)) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        with pytest.raises(InvalidResponse):
            await provider.complete(LLMRequest(prompt="hi"))


async def test_a_slow_stream_times_out() -> None:
    body: list[bytes | float] = stream_body(EVENTS[:1])
    for _ in range(20):
        body += [0.05, *stream_body(EVENTS[3:4])]
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        AnthropicProvider(KEY, base_url=server.url, timeout=0.3) as provider,
    ):
        with pytest.raises(Timeout):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


async def test_fields_the_api_lacks_are_refused_before_io() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(MESSAGE)) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        with pytest.raises(UnsupportedFeature, match="seed") as caught:
            await provider.complete(LLMRequest(prompt="hi", seed=1))
        assert (caught.value.field, caught.value.provider) == ("seed", "anthropic")
        with pytest.raises(UnsupportedFeature, match="tool_call_id"):
            await provider.complete(LLMRequest(messages=(Message("tool", "x"),)))
        with pytest.raises(UnsupportedFeature, match="logprobs"):
            [c async for c in provider.stream(LLMRequest(prompt="hi", logprobs=True))]
    assert server.requests == []


def test_identity_and_constructor_checks() -> None:
    provider = AnthropicProvider(KEY)
    assert provider.cache_identity()[:3] == (
        "anthropic",
        "https://api.anthropic.com",
        provider.model,
    )
    with pytest.raises(TypeError, match="api_key"):
        AnthropicProvider(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens_default"):
        AnthropicProvider(KEY, max_tokens_default=0)


def test_max_tokens_default_is_part_of_the_cache_key() -> None:
    # It changes the answer (where it is cut off) of every request without max_tokens, so two
    # providers that differ only in it must not share entries in a shared store.
    short = AnthropicProvider(KEY, max_tokens_default=16)
    long = AnthropicProvider(KEY, max_tokens_default=4096)
    request = LLMRequest(prompt="write an essay")
    assert cache_key(request, short) != cache_key(request, long)
