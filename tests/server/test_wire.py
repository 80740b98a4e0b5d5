"""The wire format, pure: request parsing, Cache-Control, responses, SSE, failure mapping."""

from __future__ import annotations

import json

import pytest

from vex_llm import (
    AuthenticationFailed,
    CacheControl,
    CacheMiss,
    Chunk,
    InvalidResponse,
    LLMResponse,
    Message,
    RateLimited,
    RequestFailed,
    ServerError,
    Usage,
)
from vex_llm.chat import ContentPart
from vex_llm.redaction import redact
from vex_llm.server.encode import (
    DONE_LINE,
    chunk_json,
    completion_json,
    sse_line,
    usage_chunk_json,
)
from vex_llm.server.failures import failure_for, retry_after_header
from vex_llm.server.wire import WireError, parse_chat_request


def parse(doc: dict[str, object], **options: object) -> object:
    return parse_chat_request(json.dumps(doc).encode(), tenant_id="t", **options)  # type: ignore[arg-type]


def test_a_full_request_maps_field_by_field() -> None:
    chat = parse_chat_request(
        json.dumps(
            {
                "model": "fast",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                ],
                "temperature": 0,
                "top_p": 0.5,
                "max_completion_tokens": 12,
                "stop": "END",
                "seed": 7,
                "stream": True,
                "stream_options": {"include_usage": True},
                "user": "someone",
                "n": 1,
                "logprobs": False,
            }
        ).encode(),
        tenant_id="acme",
        control=CacheControl(no_store=True),
        upstream_model={"fast": "llama3.1:8b"},
    )
    r = chat.request
    assert chat.model == "fast"
    assert (chat.stream, chat.include_usage) == (True, True)
    assert r.model == "llama3.1:8b"
    assert r.tenant_id == "acme"
    assert r.messages == (
        Message("system", "Be brief."),
        Message("user", (ContentPart("text", "a"), ContentPart("text", "b"))),
    )
    assert (r.temperature, r.top_p, r.max_tokens, r.stop, r.seed) == (0.0, 0.5, None, ("END",), 7)
    # Untyped fields travel as they came: max_completion_tokens stays max_completion_tokens.
    assert r.extra is not None
    assert r.extra.value == {
        "max_completion_tokens": 12,
        "stream_options": {"include_usage": True},
        "user": "someone",
    }
    assert (r.n, r.logprobs) == (1, False)
    assert r.cache.no_store


def test_out_of_range_values_name_their_param() -> None:
    with pytest.raises(WireError) as caught:
        parse({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "presence_penalty": 3})  # fmt: skip
    assert caught.value.param == "presence_penalty"
    assert caught.value.status == 400


def test_completion_json_matches_openai_shape() -> None:
    response = LLMResponse("hi", "m1", Usage(3, 2), finish_reason="length")
    doc = completion_json(response, completion_id="chatcmpl-1", created=5, model="m1")
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_chunks_and_sse_lines() -> None:
    ids = {"completion_id": "c", "created": 1, "model": "m"}
    first = chunk_json(Chunk("He"), first=True, **ids)  # type: ignore[arg-type]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "He"}
    last = chunk_json(Chunk("", finish_reason="stop", usage=Usage(1, 1)), **ids)  # type: ignore[arg-type]
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                  "finish_reason": "stop"}  # fmt: skip
    usage = usage_chunk_json(Chunk("", "stop", Usage(1, 2)), **ids)  # type: ignore[arg-type]
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == 3
    line = sse_line({"a": "é\ud800"})
    assert line.startswith(b"data: ")
    assert line.endswith(b"\n\n")
    assert json.loads(line[6:]) == {"a": "é\ud800"}
    assert DONE_LINE == b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("value", "cap", "header"),
    [(None, 60, None), (0.2, 60, "1"), (7.5, 60, "8"), (3600, 60, "60"), (float("nan"), 60, None)],
)
def test_retry_after_is_whole_seconds_and_capped(
    value: float | None, cap: float, header: str | None
) -> None:
    assert retry_after_header(value, cap) == header


def test_failures_map_to_statuses_and_never_carry_secrets() -> None:
    secret = "sk-live-SECRET-123"
    cases = [
        (RateLimited("slow", 10), 429),
        (ServerError(503, f"echo {secret}"), 502),
        (RequestFailed(400, "context too long"), 400),
        (AuthenticationFailed(f"bad key {secret}"), 502),
        (InvalidResponse("cut"), 502),
        (CacheMiss("no entry"), 504),
    ]
    for exc, status in cases:
        failure = failure_for(exc, retry_after_cap=60, secrets=[secret])
        assert failure.status == status, exc
        assert secret not in failure.message
    assert redact(f"a {secret} b", [secret]) == "a [redacted] b"
