"""The Anthropic door's pure wire code: a ``/v1/messages`` body read into typed fields, typed
answers written as Anthropic's message and events, and a message and its events turned into
each other (how a stored answer serves the other kind of request).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from vex_llm.chat import ContentPart, ToolCall, ToolCallDelta
from vex_llm.errors import UnsupportedFeature
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Message, Usage
from vex_llm.wire.anthropic_answer import (
    MessageStreamEncoder,
    assemble_message,
    message_events,
    message_json,
)
from vex_llm.wire.anthropic_request import BadRequest, translated_extra, typed_fields
from vex_llm.wire.anthropic_stream import AnthropicStreamDecoder

from .test_anthropic_tools import EVENTS, MESSAGE

THINKING = {
    **MESSAGE,
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        *MESSAGE["content"],
    ],
}


def test_the_api_s_events_assemble_into_its_message() -> None:
    assert assemble_message(copy.deepcopy(doc) for _, doc in EVENTS) == MESSAGE


@pytest.mark.parametrize("message", [MESSAGE, THINKING], ids=["tools", "thinking"])
def test_a_message_and_its_events_are_inverses(message: dict[str, Any]) -> None:
    events = message_events(message)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") == 1
    assert assemble_message(doc for _, doc in events) == message
    # The stream decoder reads them as the API's own.
    decoder = AnthropicStreamDecoder("m")
    chunks = [c for name, doc in events for c in decoder.feed(name, json.dumps(doc))]
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage == Usage(472, 89)


def test_typed_chunks_become_anthropic_s_stream() -> None:
    encoder = MessageStreamEncoder("msg_1", "m")
    chunks = [
        Chunk(model="m"),
        Chunk(delta="Let me ", model="m"),
        Chunk(delta="check.", model="m"),
        Chunk(tool_calls=(ToolCallDelta(0, "call_1", "get_weather", '{"city":'),)),
        Chunk(tool_calls=(ToolCallDelta(0, arguments=' "Paris"}'),)),
        Chunk(tool_calls=(ToolCallDelta(1, "call_2", "get_time", "{}"),)),
        Chunk(finish_reason="tool_calls", usage=Usage(10, 7), model="m"),
    ]
    events = [e for c in chunks for e in encoder.feed(c)]
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    response = LLMResponse(
        content="Let me check.",
        model="m",
        usage=Usage(10, 7),
        finish_reason="tool_calls",
        tool_calls=(
            ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_2", "get_time", "{}"),
        ),
    )
    assert assemble_message(doc for _, doc in events) == message_json(
        response, message_id="msg_1", model="m"
    )


def test_an_empty_answer_still_streams_every_envelope_event() -> None:
    encoder = MessageStreamEncoder("msg_1", "m")
    events = encoder.feed(Chunk(finish_reason="length", usage=Usage(3, 0)))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert events[2][1]["delta"]["stop_reason"] == "max_tokens"


BODY: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 100,
    "system": [
        {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "B"},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": True},
                {"type": "text", "text": "and?"},
            ],
        },
    ],
    "top_k": 3,
    "metadata": {"user_id": "u"},
}


def test_a_body_reads_into_openai_s_vocabulary_without_cache_hints() -> None:
    fields = typed_fields(BODY)
    request = LLMRequest(model="claude", **fields)
    assert request.messages == (
        Message("system", (ContentPart("text", "A"), ContentPart("text", "B"))),
        Message("user", (ContentPart("text", "look"), ContentPart.image("https://x/y.png"))),
        Message("assistant", "Checking.", tool_calls=(ToolCall("t1", "f", '{"a":1}'),)),
        Message("tool", "ok", tool_call_id="t1", extra={"is_error": True}),  # type: ignore[arg-type]
        Message("user", "and?"),
    )
    assert request.extra is not None
    assert request.extra.value == {"metadata": {"user_id": "u"}, "top_k": 3}
    # What goes to another API: not the metadata label.
    assert translated_extra(request, "x") == {"top_k": 3}
    thinking = LLMRequest(**typed_fields({**BODY, "thinking": {"type": "enabled"}}))
    with pytest.raises(UnsupportedFeature, match="'thinking'"):
        translated_extra(thinking, "x")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 1, "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        (
            {"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
            "messages.0.content.0.source",
        ),
        ({"max_tokens": 1, "messages": [], "temperature": 2}, "messages"),
        (
            {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "temperature": 2},
            "temperature",
        ),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as refused:
        typed_fields(body)
    assert refused.value.param == param
