"""The Anthropic translation: request payloads (pure), tool round trips JSON and streamed, and
every field the Messages API cannot honour refused by name.

Wire shapes follow the Messages API reference and anthropic-sdk-python's types
(``tool_use`` / ``tool_result`` blocks, ``input_json_delta``, ``tool_choice`` with
``disable_parallel_tool_use``, image ``source`` of type ``base64`` or ``url``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from vex_llm import AnthropicProvider, LLMRequest, Message
from vex_llm.chat import ContentPart, Tool, ToolCall
from vex_llm.errors import InvalidResponse, UnsupportedFeature
from vex_llm.models import Chunk
from vex_llm.wire.anthropic_messages import ANTHROPIC_MESSAGES, build_payload
from vex_llm.wire.anthropic_stream import AnthropicStreamDecoder

from .fakes import LoopbackServer, Reply, json_reply, sse

KEY = "sk-ant-test-key"

WEATHER = Tool.function(
    "get_weather",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    description="Current weather",
)
TIME = Tool.function("get_time")

#: An answer that calls two tools after some text: tool calls are numbered by their own
#: order (0, 1), not by their blocks' positions (1, 2).
MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "°C"},
        },
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 89},
}

#: The same answer streamed, as the API sends it (partial JSON cut anywhere; a call
#: without arguments sends an empty partial_json).
EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                **MESSAGE,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 472, "output_tokens": 2},
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
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    *(
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            },
        )
        for piece in ("", '{"location":', ' "San Fra', 'ncisco, CA", "unit": "°C"}')
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_02",
                "name": "get_time",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def stream_body(events: list[tuple[str, dict[str, Any]]]) -> list[bytes | float]:
    return sse(*(doc for _, doc in events), event_names=[name for name, _ in events])


def assembled(chunks: Iterable[Chunk]) -> tuple[ToolCall, ...]:
    """Tool calls put together from their deltas, the way an OpenAI client does."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for piece in chunk.tool_calls:
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] = piece.name or call["name"]
            call["arguments"] += piece.arguments
    return tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items()))


def payload(request: LLMRequest) -> dict[str, Any]:
    return build_payload(request, "claude-x", max_tokens_default=64, stream=False)


# -- the answer, JSON and streamed ----------------------------------------------------------


async def test_tool_calls_round_trip_json_and_streamed_alike() -> None:
    request = LLMRequest(prompt="Weather and time in SF?", tools=(WEATHER, TIME))
    async with (
        LoopbackServer(
            lambda r: (
                Reply(body=stream_body(EVENTS)) if r.json().get("stream") else json_reply(MESSAGE)
            )
        ) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        answer = await provider.complete(request)
        chunks = [c async for c in provider.stream(request)]
    assert answer.content == "Let me check."
    assert answer.tool_calls == (
        ToolCall("toolu_01", "get_weather", '{"location": "San Francisco, CA", "unit": "°C"}'),
        ToolCall("toolu_02", "get_time", "{}"),
    )
    assert answer.finish_reason == "tool_calls"
    assert answer.raw is not None
    assert answer.raw.value == MESSAGE
    assert answer.raw_format == ANTHROPIC_MESSAGES
    # The stream says the same thing.
    assert assembled(chunks) == answer.tool_calls
    assert "".join(c.delta for c in chunks) == answer.content
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == answer.usage
    starts = [
        c.tool_calls[0] for c in chunks if c.raw_event == "content_block_start" and c.tool_calls
    ]
    assert [(d.index, d.id, d.name, d.type) for d in starts] == [
        (0, "toolu_01", "get_weather", "function"),
        (1, "toolu_02", "get_time", "function"),
    ]
    assert [c.raw_event for c in chunks[:-1]] == [name for name, _ in EVENTS]
    sent = server.requests[0].json()
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": WEATHER.parameters,
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]


async def test_a_follow_up_turn_carries_tool_use_and_tool_result_blocks() -> None:
    calls = (
        ToolCall("toolu_01", "get_weather", '{"location": "SF"}'),
        ToolCall("toolu_02", "get_time", ""),
    )
    request = LLMRequest(
        messages=(
            Message("system", "be brief"),
            Message("user", "Weather and time in SF?"),
            Message("assistant", None, tool_calls=calls),
            Message("tool", "18°C", tool_call_id="toolu_01"),
            Message("tool", "10:15", tool_call_id="toolu_02"),
            Message("user", "Thanks, and so?"),
        ),
        tools=(WEATHER, TIME),
    )
    answer = {**MESSAGE, "content": [{"type": "text", "text": "Mild."}], "stop_reason": "end_turn"}
    async with (
        LoopbackServer(lambda r: json_reply(answer)) as server,
        AnthropicProvider(KEY, base_url=server.url) as provider,
    ):
        response = await provider.complete(request)
    assert (response.content, response.finish_reason, response.tool_calls) == ("Mild.", "stop", ())
    sent = server.requests[0].json()
    assert sent["system"] == "be brief"
    assert sent["messages"] == [
        {"role": "user", "content": "Weather and time in SF?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"location": "SF"},
                },
                {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
            ],
        },
        # Tool results and the next user turn: one user turn (the API needs alternation).
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "10:15"},
                {"type": "text", "text": "Thanks, and so?"},
            ],
        },
    ]


# -- the request (pure) ---------------------------------------------------------------------


def test_content_parts_become_blocks() -> None:
    png = "iVBORw0KGgo="
    request = LLMRequest(
        messages=(
            Message(
                "developer", (ContentPart("text", "rule one"), ContentPart("text", "rule two"))
            ),
            Message(
                "user",
                (
                    ContentPart("text", "What is this?"),
                    ContentPart.image("https://example.com/cat.jpg"),
                    ContentPart.image(f"data:image/png;base64,{png}", detail="auto"),
                ),
            ),
            Message("assistant", "A cat.", tool_calls=()),
        ),
    )
    sent = payload(request)
    assert sent["system"] == [
        {"type": "text", "text": "rule one"},
        {"type": "text", "text": "rule two"},
    ]
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": png},
                },
            ],
        },
        {"role": "assistant", "content": "A cat."},
    ]
    assert sent["max_tokens"] == 64


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_tool_choice_and_parallel_calls(
    tool_choice: object, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    sent = payload(
        LLMRequest(
            prompt="hi", tools=(WEATHER,), tool_choice=tool_choice, parallel_tool_calls=parallel
        )
    )
    assert sent.get("tool_choice") == expected


def test_extra_fields_are_mapped_dropped_or_passed_on() -> None:
    sent = payload(
        LLMRequest(
            prompt="hi",
            extra={
                "max_completion_tokens": 300,
                "user": "u-42",
                "metadata": {"run": "7"},
                "store": True,
                "prompt_cache_key": "k",
                "safety_identifier": "s",
                "service_tier": "auto",
                "stream_options": {"include_usage": True},
                "top_k": 5,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            response_format={"type": "text"},
            n=1,
            logprobs=False,
        )
    )
    assert sent == {
        "model": "claude-x",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "u-42"},
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"seed": 1}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            "response_format",
        ),
        *(
            ({"extra": {name: value}}, name)
            for name, value in [
                ("logit_bias", {"50256": -100}),
                ("reasoning_effort", "low"),
                ("verbosity", "low"),
                ("modalities", ["text"]),
                ("audio", {"voice": "alloy"}),
                ("prediction", {"type": "content", "content": "x"}),
                ("web_search_options", {}),
            ]
        ),
        ({"tools": ({"type": "custom", "custom": {"name": "x"}},)}, "tools[0].type"),
        (
            {"tools": (Tool.function("f", {"type": "object"}, strict=True),)},
            "tools[0].function.strict",
        ),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"extra": {"max_completion_tokens": 9}, "max_tokens": 8}, "max_completion_tokens"),
        ({"messages": (Message("user", "hi", name="bob"),)}, "messages[0].name"),
        ({"messages": (Message("tool", "18°C"),)}, "messages[0].tool_call_id"),
        (
            {"messages": (Message("assistant", None, tool_calls=(ToolCall("c", "f", "{oops"),)),)},
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": (Message("user", (ContentPart.image("https://x/y.png", "low"),)),)},
            "messages[0].content[0].image_url.detail",
        ),
        (
            {"messages": (Message("user", (ContentPart.image("data:image/png,raw"),)),)},
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": (
                    Message(
                        "user",
                        ({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},),
                    ),
                )
            },
            "messages[0].content[0]",
        ),
        (
            {"messages": (Message("system", (ContentPart.image("https://x/y.png"),)),)},
            "messages[0].content[0]",
        ),
        ({"system": "once", "extra": {"system": "again"}}, "system"),
    ],
)
def test_what_the_api_cannot_honour_is_refused_by_name(
    request_fields: dict[str, Any], field: str
) -> None:
    fields = {"prompt": "hi", **request_fields}
    with pytest.raises(UnsupportedFeature) as caught:
        payload(LLMRequest(**fields))
    assert (caught.value.field, caught.value.provider) == (field, "anthropic")
    assert field in str(caught.value)
    assert "anthropic" in str(caught.value)


def test_echoed_empty_fields_of_an_earlier_answer_are_not_refused() -> None:
    # openai-python's model_dump of an earlier answer carries these nulls and empties back.
    echoed = Message.from_openai(
        {"role": "assistant", "content": "ok", "refusal": None, "annotations": [], "audio": None}
    )
    sent = payload(LLMRequest(messages=(echoed, Message("user", "and?"))))
    assert sent["messages"][0] == {"role": "assistant", "content": "ok"}
    with pytest.raises(UnsupportedFeature, match="audio"):
        payload(
            LLMRequest(
                messages=(
                    Message.from_openai(
                        {"role": "assistant", "content": "ok", "audio": {"id": "a"}}
                    ),
                    Message("user", "and?"),
                )
            )
        )


def test_decoder_rejects_an_event_after_message_stop() -> None:
    decoder = AnthropicStreamDecoder("m")
    for name, doc in EVENTS:
        decoder.feed(name, json.dumps(doc))
    decoder.finish()
    with pytest.raises(InvalidResponse, match="after message_stop"):
        decoder.feed("ping", '{"type": "ping"}')
