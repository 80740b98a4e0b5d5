"""Requests, responses and cache controls: defaults, normalisation and bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from vex_llm import (
    DEFAULT_SYSTEM,
    CacheControl,
    InputLimits,
    InputTooLarge,
    LLMRequest,
    LLMResponse,
    Message,
    Usage,
)


def test_simple_and_with_role_use_the_original_defaults() -> None:
    simple = LLMRequest.simple("hi")
    assert (simple.system, simple.temperature, simple.max_tokens) == (DEFAULT_SYSTEM, 0.7, 1024)
    role = LLMRequest.with_role("You are terse.", "hi")
    assert (role.system, role.prompt, role.temperature, role.max_tokens) == (
        "You are terse.",
        "hi",
        0.7,
        1024,
    )


def test_keyword_construction_normalises_sequences() -> None:
    request = LLMRequest(
        prompt="p",
        system="s",
        tenant_id="t",
        temperature=1,
        max_tokens=5,
        top_p=0.5,
        presence_penalty=-1,
        frequency_penalty=1.5,
        stop=["\n", "END"],
        seed=7,
        model="m",
        messages=[{"role": "user", "content": "earlier"}, Message("assistant", "reply")],
        timeout=timedelta(seconds=3),
        cache=CacheControl(ttl=timedelta(minutes=1)),
    )
    assert request.stop == ("\n", "END")
    assert request.temperature == 1.0
    assert isinstance(request.temperature, float)
    assert request.messages == (Message("user", "earlier"), Message("assistant", "reply"))
    assert request.timeout == 3.0
    assert request.cache.ttl == 60.0
    assert [m.role for m in request.conversation()] == ["system", "user", "assistant", "user"]
    assert LLMRequest(prompt="p", stop="x").stop == ("x",)


def test_response_needs_only_content_and_model() -> None:
    response = LLMResponse(content="a", model="m")
    assert response.usage == Usage()
    assert response.cached is False
    assert response.finish_reason == "stop"
    assert Usage(3, 4).total_tokens == 7


BAD_REQUESTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"prompt": 42}, TypeError, "prompt must be a str"),
    ({"prompt": b"bytes"}, TypeError, "prompt must be a str"),
    ({"prompt": ""}, ValueError, "needs a prompt or at least one message"),
    ({"prompt": "p", "temperature": "hot"}, TypeError, "temperature"),
    ({"prompt": "p", "temperature": 3.0}, ValueError, "temperature must be between"),
    ({"prompt": "p", "temperature": float("nan")}, ValueError, "temperature"),
    ({"prompt": "p", "temperature": True}, TypeError, "temperature"),
    ({"prompt": "p", "max_tokens": -1}, ValueError, "max_tokens must be at least 1"),
    ({"prompt": "p", "max_tokens": 0}, ValueError, "max_tokens"),
    ({"prompt": "p", "max_tokens": 1.5}, TypeError, "max_tokens"),
    ({"prompt": "p", "top_p": 1.5}, ValueError, "top_p"),
    ({"prompt": "p", "presence_penalty": 9}, ValueError, "presence_penalty"),
    ({"prompt": "p", "stop": [1]}, TypeError, "stop"),
    ({"prompt": "p", "stop": 5}, TypeError, "stop"),
    ({"prompt": "p", "messages": "hello"}, TypeError, "messages"),
    ({"prompt": "p", "messages": [{"role": "user"}]}, TypeError, "role' and 'content"),
    ({"prompt": "p", "messages": [{"role": "wizard", "content": "x"}]}, ValueError, "role"),
    ({"prompt": "p", "messages": [{"role": "user", "content": 5}]}, TypeError, "content"),
    ({"prompt": "p", "messages": [{"role": "user", "content": None}]}, ValueError, "assistant"),
    ({"prompt": "p", "tools": [{"type": "function"}]}, TypeError, "tools\\[0\\].function"),
    ({"prompt": "p", "tool_choice": 3}, TypeError, "tool_choice"),
    ({"prompt": "p", "response_format": ["json"]}, TypeError, "response_format"),
    ({"prompt": "p", "n": 0}, ValueError, "n must be at least 1"),
    ({"prompt": "p", "logprobs": "yes"}, TypeError, "logprobs"),
    ({"prompt": "p", "extra": {"temperature": 1}}, ValueError, "temperature"),
    ({"prompt": "p", "extra": {"x": float("nan")}}, ValueError, "extra.x"),
    ({"prompt": "p", "extra": {"x": object()}}, TypeError, "extra.x"),
    ({"prompt": "p", "timeout": 0}, ValueError, "timeout"),
    ({"prompt": "p", "timeout": "5s"}, TypeError, "timeout"),
    ({"prompt": "p", "tenant_id": 5}, TypeError, "tenant_id"),
    ({"prompt": "p", "cache": "no-cache"}, TypeError, "cache must be"),
    ({"prompt": "p", "cache": {"bogus": True}}, TypeError, "unknown CacheControl field"),
]


@pytest.mark.parametrize(("fields", "error", "message"), BAD_REQUESTS)
def test_bad_requests_fail_at_construction(
    fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LLMRequest(**fields)


def test_unknown_cache_control_field_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        CacheControl(bogus=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unknown CacheControl field"):
        CacheControl.from_mapping({"no_cache": True, "max_age": 5})


@pytest.mark.parametrize("ttl", [0, -1, timedelta(0), float("inf")])
def test_cache_control_rejects_non_positive_durations(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl"):
        CacheControl(ttl=ttl)  # type: ignore[arg-type]


def test_contradictory_cache_control_is_rejected() -> None:
    with pytest.raises(ValueError, match="contradict"):
        CacheControl(only_if_cached=True, no_cache=True)


def test_validate_measures_utf8_bytes_not_characters() -> None:
    limits = InputLimits(max_prompt_bytes=10, max_system_bytes=10)
    LLMRequest(prompt="a" * 10).validate(limits)
    with pytest.raises(InputTooLarge, match="prompt is 12 bytes"):
        LLMRequest(prompt="é" * 6).validate(limits)
    with pytest.raises(InputTooLarge, match="system prompt"):
        LLMRequest(prompt="p", system="s" * 11).validate(limits)
    with pytest.raises(InputTooLarge, match="prompt"):
        LLMRequest(messages=[Message("user", "x" * 6), Message("assistant", "y" * 6)]).validate(
            limits
        )


def test_default_limits_fit_long_documents() -> None:
    """A 120 KiB document under a 12 KiB system prompt passes; 4 MiB / 1 MiB are the caps."""
    LLMRequest(prompt="x" * 120 * 1024, system="s" * 12 * 1024).validate()
    with pytest.raises(InputTooLarge) as info:
        LLMRequest(prompt="x" * (4 * 1024 * 1024 + 1)).validate()
    assert isinstance(info.value, ValueError)
    assert info.value.limit == 4 * 1024 * 1024
    with pytest.raises(InputTooLarge):
        LLMRequest(prompt="p", system="x" * (1024 * 1024 + 1)).validate()


def test_message_fields_beyond_role_and_content_are_kept() -> None:
    """A name, a tool result id, tool calls and unknown fields survive, in OpenAI's shape."""
    wire = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1", "x-vendor": {"a": 1}},
    ]
    request = LLMRequest(messages=wire)
    assert [m.to_openai() for m in request.messages] == wire
    assert not request.plain
    assert request.messages[1].tool_calls[0].name == "f"
