"""The OpenAI chat wire format, pure: odd but real answers parse, and a recorded stream
assembles into the answer it amounts to whatever a server repeats in its deltas."""

from __future__ import annotations

from typing import Any

from vex_llm import LLMRequest
from vex_llm.wire.openai_chat import (
    assemble_completion,
    build_payload,
    completion_chunks,
    parse_completion,
)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_a_deprecated_function_call_answer_is_an_answer() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "f", "arguments": "{}"},
    }
    doc = {
        "id": "x",
        "choices": [{"index": 0, "message": message, "finish_reason": "function_call"}],
    }
    response = parse_completion(doc, "m")
    assert response.content == ""
    assert response.finish_reason == "function_call"
    assert response.raw is not None
    assert response.raw.value["choices"][0]["message"]["function_call"]["name"] == "f"
    # Streamed, it assembles back to the same message.
    events = [
        chunk(
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": ""}}
        ),
        chunk({"function_call": {"arguments": "{}"}}),
        chunk({}, "function_call"),
    ]
    assembled = assemble_completion(events)
    assert assembled["choices"][0]["message"]["function_call"] == {"name": "f", "arguments": "{}"}


def test_fields_a_server_repeats_in_every_delta_are_not_joined() -> None:
    """Ollama's and Gemini's OpenAI endpoints send role, id, type and the name each time."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    events = [
        chunk({"role": "assistant", "content": "Hi"}),
        chunk({"role": "assistant", "content": " there"}),
        chunk(
            {
                "role": "assistant",
                "tool_calls": [{**call, "function": {"name": "f", "arguments": '{"a"'}}],
            }
        ),
        chunk(
            {
                "role": "assistant",
                "tool_calls": [{**call, "function": {"name": "f", "arguments": ": 1}"}}],
            }
        ),
        chunk({}, "tool_calls"),
    ]
    message = assemble_completion(events)["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == "Hi there"
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]


def test_a_tool_calls_own_fields_survive_the_next_turn() -> None:
    """Gemini needs its thought signature back on the call when the conversation goes on."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "sig=="}},
    }
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    payload = build_payload(LLMRequest(messages=messages), "m", stream=False)
    assert payload["messages"][1]["tool_calls"] == [call]


def test_a_json_answer_streams_back_and_assembles_to_itself() -> None:
    doc = {
        "id": "x",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": f"answer {i}", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for i in range(2)
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        "system_fingerprint": "fp",
    }
    assert assemble_completion(completion_chunks(doc)) == doc
