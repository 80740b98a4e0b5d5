"""The Ollama translation: request payloads (pure), tool round trips JSON and streamed, and
every field ``/api/chat`` cannot honour refused by name.

Wire shapes follow Ollama's API docs (docs/api.md, "Chat request (with tools)"): tools in
OpenAI's shape, ``message.tool_calls`` as ``{"function": {"name", "arguments": <object>}}``,
tool results as ``{"role": "tool", "content", "tool_name"}``, images as base64 strings in
``images``, structured output through ``format``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from vex_llm import LLMRequest, Message, OllamaProvider, Usage
from vex_llm.chat import ContentPart, Tool, ToolCall
from vex_llm.errors import InvalidResponse, UnsupportedFeature
from vex_llm.models import Chunk
from vex_llm.wire.ollama_chat import OLLAMA_CHAT, OllamaStreamDecoder, build_payload

from .fakes import LoopbackServer, Reply, json_reply, ndjson

WEATHER = Tool.function(
    "get_current_weather",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    description="Get the current weather for a location",
)

CALLS = [
    {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}},
    # Newer Ollama versions give calls an id: it is kept.
    {
        "id": "call_abc",
        "function": {"index": 1, "name": "get_current_weather", "arguments": {"location": "Oslo"}},
    },
]

ANSWER = {
    "model": "llama3.2",
    "created_at": "2024-07-22T20:33:28.123648Z",
    "message": {"role": "assistant", "content": "", "tool_calls": CALLS},
    "done_reason": "stop",
    "done": True,
    "total_duration": 885095291,
    "prompt_eval_count": 122,
    "eval_count": 33,
}

#: The same answer streamed: each call arrives whole, then the done line.
LINES = [
    {
        "model": "llama3.2",
        "created_at": "2024-07-22T20:33:28Z",
        "message": {"role": "assistant", "content": "", "tool_calls": CALLS[:1]},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2024-07-22T20:33:28Z",
        "message": {"role": "assistant", "content": "", "tool_calls": CALLS[1:]},
        "done": False,
    },
    {**ANSWER, "message": {"role": "assistant", "content": ""}},
]


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
    return build_payload(request, "llama3.2", stream=False)


async def test_tool_calls_round_trip_json_and_streamed_alike() -> None:
    request = LLMRequest(prompt="Weather in Paris and Oslo?", tools=(WEATHER,), tool_choice="auto")
    async with (
        LoopbackServer(
            lambda r: Reply(body=ndjson(*LINES)) if r.json()["stream"] else json_reply(ANSWER)
        ) as server,
        OllamaProvider(server.url) as provider,
    ):
        answer = await provider.complete(request)
        chunks = [c async for c in provider.stream(request)]
    assert answer.tool_calls == (
        ToolCall("call_0", "get_current_weather", '{"location": "Paris, FR"}'),
        ToolCall("call_abc", "get_current_weather", '{"location": "Oslo"}'),
    )
    assert (answer.content, answer.finish_reason, answer.usage) == (
        "",
        "tool_calls",
        Usage(122, 33),
    )
    assert answer.raw is not None
    assert answer.raw.value == ANSWER
    assert answer.raw_format == OLLAMA_CHAT
    assert assembled(chunks) == answer.tool_calls
    assert [c.raw for c in chunks[:-1]] == [json.dumps(line) for line in LINES]
    assert (chunks[-1].finish_reason, chunks[-1].usage) == ("tool_calls", Usage(122, 33))
    for sent in (r.json() for r in server.requests):
        assert sent["tools"] == [WEATHER.to_openai()]
        assert "tool_choice" not in sent


async def test_a_follow_up_turn_carries_tool_calls_and_results() -> None:
    request = LLMRequest(
        messages=(
            Message("developer", "be brief"),
            Message("user", "Weather in Paris?"),
            Message(
                "assistant",
                None,
                tool_calls=(ToolCall("call_0", "get_current_weather", '{"location": "Paris"}'),),
            ),
            Message("tool", "18°C", tool_call_id="call_0"),
            Message("tool", "no id", tool_call_id="unknown"),
        ),
        tools=(WEATHER,),
    )
    answer = {**ANSWER, "message": {"role": "assistant", "content": "Mild."}}
    async with (
        LoopbackServer(lambda r: json_reply(answer)) as server,
        OllamaProvider(server.url) as provider,
    ):
        response = await provider.complete(request)
    assert (response.content, response.finish_reason, response.tool_calls) == ("Mild.", "stop", ())
    assert server.requests[0].json()["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_current_weather", "arguments": {"location": "Paris"}}}
            ],
        },
        {"role": "tool", "content": "18°C", "tool_name": "get_current_weather"},
        {"role": "tool", "content": "no id"},
    ]


def test_images_and_structured_output() -> None:
    png = "iVBORw0KGgo="
    request = LLMRequest(
        messages=(
            Message(
                "user",
                (
                    ContentPart("text", "What is "),
                    ContentPart("text", "this?"),
                    ContentPart.image(f"data:image/png;base64,{png}"),
                ),
            ),
        ),
        response_format={"type": "json_object"},
    )
    sent = payload(request)
    assert sent["messages"] == [{"role": "user", "content": "What is this?", "images": [png]}]
    assert sent["format"] == "json"
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    structured = LLMRequest(
        prompt="How old?",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": True},
        },
    )
    assert payload(structured)["format"] == schema
    assert "format" not in payload(LLMRequest(prompt="x", response_format={"type": "text"}))


def test_extra_fields_go_to_options_or_the_top_level() -> None:
    sent = payload(
        LLMRequest(
            prompt="hi",
            temperature=0.1,
            extra={
                "max_completion_tokens": 50,
                "user": "u-42",
                "metadata": {"run": "7"},
                "store": True,
                "stream_options": {"include_usage": True},
                "top_k": 5,
                "num_ctx": 4096,
                "options": {"repeat_penalty": 1.2},
                "keep_alive": "10m",
                "think": False,
            },
        )
    )
    assert sent == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {
            "temperature": 0.1,
            "num_predict": 50,
            "repeat_penalty": 1.2,
            "num_ctx": 4096,
            "top_k": 5,
        },
        "keep_alive": "10m",
        "think": False,
    }


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"tools": (WEATHER,), "tool_choice": "required"}, "tool_choice"),
        ({"tools": (WEATHER,), "tool_choice": "none"}, "tool_choice"),
        (
            {"tools": (WEATHER,), "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": (WEATHER,), "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": ({"type": "custom", "custom": {"name": "x"}},)}, "tools[0].type"),
        ({"n": 3}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
        ({"extra": {"logit_bias": {"1": 2}}}, "logit_bias"),
        ({"extra": {"reasoning_effort": "low"}}, "reasoning_effort"),
        ({"extra": {"max_completion_tokens": 9}, "max_tokens": 8}, "max_completion_tokens"),
        ({"extra": {"options": {"top_k": 1}, "top_k": 2}}, "top_k"),
        ({"messages": (Message("user", "hi", name="bob"),)}, "messages[0].name"),
        (
            {"messages": (Message("user", (ContentPart.image("https://x/cat.png"),)),)},
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": (
                    Message(
                        "user",
                        ({"type": "file", "file": {"file_id": "f"}},),
                    ),
                )
            },
            "messages[0].content[0]",
        ),
        (
            {"messages": (Message("assistant", None, tool_calls=(ToolCall("c", "f", "[1]"),)),)},
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_what_ollama_cannot_honour_is_refused_by_name(
    request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        payload(LLMRequest(**{"prompt": "hi", **request_fields}))
    assert (caught.value.field, caught.value.provider) == (field, "ollama")
    assert field in str(caught.value)


async def test_refused_before_io() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(ANSWER)) as server,
        OllamaProvider(server.url) as provider,
    ):
        with pytest.raises(UnsupportedFeature, match="'n'"):
            await provider.complete(LLMRequest(prompt="hi", n=2))
        with pytest.raises(UnsupportedFeature, match="tool_choice"):
            [c async for c in provider.stream(LLMRequest(prompt="hi", tool_choice="required"))]
    assert server.requests == []


def test_decoder_rejects_a_line_after_done_and_malformed_calls() -> None:
    decoder = OllamaStreamDecoder("m")
    for line in LINES:
        decoder.feed(json.dumps(line))
    decoder.finish()
    with pytest.raises(InvalidResponse, match="after"):
        decoder.feed(json.dumps(LINES[0]))
    bad = {**LINES[0], "message": {"content": "", "tool_calls": [{"function": {}}]}}
    with pytest.raises(InvalidResponse, match="name"):
        OllamaStreamDecoder("m").feed(json.dumps(bad))
