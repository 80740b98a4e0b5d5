"""Requests of OpenAI's other text APIs (``LLMRequest.operation``): legacy completions and
Responses, in the library — the request, its key, the provider that speaks them (and those
that refuse them before any I/O), the cache, and the stream <-> answer rules."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from vex_llm import (
    AnthropicProvider,
    CachedProvider,
    LLMRequest,
    OllamaProvider,
    OpenAICompatibleProvider,
)
from vex_llm.cache.assemble import assemble_response, response_chunks
from vex_llm.cache.key import cache_key
from vex_llm.errors import InputTooLarge, UnsupportedFeature
from vex_llm.models import OPENAI_COMPLETIONS, OPENAI_RESPONSES, InputLimits
from vex_llm.wire.openai_completions import CompletionsStreamDecoder
from vex_llm.wire.openai_responses import ResponsesStreamDecoder, response_events

ID = ("openai-compatible", "http://x/v1", "m")

TEXT_COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "m-1",
    "choices": [
        {
            "text": "hello world",
            "index": 0,
            "logprobs": {"tokens": ["hello", " world"], "token_logprobs": [-0.1, -0.2]},
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}

RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "error": None,
    "model": "m-1",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi there", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": '{"a":1}',
            "status": "completed",
        },
    ],
    "usage": {"input_tokens": 4, "output_tokens": 6, "total_tokens": 10},
}


def completions(**fields: Any) -> LLMRequest:
    return LLMRequest(operation=OPENAI_COMPLETIONS, model="m", extra=fields)


def test_an_operation_request_needs_no_prompt_and_keeps_its_fields_in_extra() -> None:
    request = completions(prompt="x", temperature=0, logprobs=2, stop="\n")
    assert request.extra is not None
    assert request.extra.value["logprobs"] == 2
    assert not request.plain
    with pytest.raises(ValueError, match="in extra"):
        LLMRequest(operation=OPENAI_COMPLETIONS, prompt="x")
    with pytest.raises(ValueError, match="temperature"):
        LLMRequest(operation=OPENAI_COMPLETIONS, temperature=0.5, extra={"prompt": "x"})
    with pytest.raises(ValueError, match="stream"):
        completions(prompt="x", stream=True)
    with pytest.raises(TypeError):
        LLMRequest(operation=5, extra={"prompt": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt or at least one message"):
        LLMRequest()


def test_the_operation_is_keyed() -> None:
    text = completions(prompt="hi")
    assert cache_key(text, ID) == cache_key(completions(prompt="hi"), ID)
    assert cache_key(text, ID) != cache_key(completions(prompt="hi!"), ID)
    responses = LLMRequest(operation=OPENAI_RESPONSES, model="m", extra={"prompt": "hi"})
    assert cache_key(text, ID) != cache_key(responses, ID)
    chat = LLMRequest(prompt="hi", model="m")
    assert cache_key(text, ID) != cache_key(chat, ID)
    # Unkeyed fields stay unkeyed.
    assert cache_key(completions(prompt="hi", user="u"), ID) == cache_key(text, ID)


def test_the_whole_body_is_bounded_by_the_prompt_limit() -> None:
    with pytest.raises(InputTooLarge):
        completions(prompt="x" * 200).validate(InputLimits(max_prompt_bytes=100))
    completions(prompt="x" * 20).validate(InputLimits(max_prompt_bytes=100))


def _recorded(events: list[dict[str, Any]]) -> list[Any]:
    decoder = CompletionsStreamDecoder("m")
    chunks = []
    for event in events:
        chunks += decoder.feed(json.dumps(event))
    return chunks + decoder.feed("[DONE]")


def test_a_completions_stream_assembles_into_its_text_completion_and_back() -> None:
    head = {k: TEXT_COMPLETION[k] for k in ("id", "object", "created", "model")}
    pieces = [
        {"text": "hello", "index": 0, "logprobs": {"tokens": ["hello"], "token_logprobs": [-0.1]}},
        {
            "text": " world",
            "index": 0,
            "logprobs": {"tokens": [" world"], "token_logprobs": [-0.2]},
            "finish_reason": "length",
        },
    ]
    events = [{**head, "choices": [{"finish_reason": None, **p}]} for p in pieces]
    events.append({**head, "choices": [], "usage": TEXT_COMPLETION["usage"]})
    chunks = _recorded(events)
    assert "".join(c.delta for c in chunks) == "hello world"
    final = chunks[-1]
    assert (final.finish_reason, final.usage.total_tokens) == ("length", 5)  # type: ignore[union-attr]
    whole = assemble_response(chunks, "m", 12.0)
    assert whole.raw is not None
    assert whole.raw.value == TEXT_COMPLETION
    assert (whole.content, whole.finish_reason, whole.latency_ms) == ("hello world", "length", 12.0)
    replay = response_chunks(whole)
    assert "".join(c.delta for c in replay) == "hello world"
    assert assemble_response(replay, "m", 0).raw.value == TEXT_COMPLETION  # type: ignore[union-attr]


def test_a_responses_stream_is_the_response_its_terminal_event_carries() -> None:
    decoder = ResponsesStreamDecoder("m")
    chunks = []
    for name, body in response_events(RESPONSE):
        chunks += decoder.feed(name, json.dumps(body))
    assert decoder.done
    assert [c.raw_event for c in chunks[:2]] == ["response.created", "response.in_progress"]
    assert "".join(c.delta for c in chunks) == "hi there"
    whole = assemble_response(chunks, "m", 3.0)
    assert whole.raw is not None
    assert whole.raw.value == RESPONSE
    assert (whole.content, whole.finish_reason) == ("hi there", "tool_calls")
    assert [(c.id, c.name, c.arguments) for c in whole.tool_calls] == [("call_1", "f", '{"a":1}')]
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (4, 6)
    numbers = [json.loads(c.raw)["sequence_number"] for c in chunks if c.raw is not None]
    assert numbers == list(range(len(numbers)))
    assert [json.loads(c.raw or "0") for c in response_chunks(whole)] == [
        json.loads(c.raw or "0") for c in chunks
    ]


def test_a_failed_response_is_an_error_not_an_answer() -> None:
    decoder = ResponsesStreamDecoder("m")
    failed = {**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "boom"}}
    with pytest.raises(Exception, match="boom"):
        decoder.feed("response.failed", json.dumps({"type": "response.failed", "response": failed}))
    with pytest.raises(Exception, match="nope"):
        ResponsesStreamDecoder("m").feed("error", json.dumps({"type": "error", "message": "nope"}))


def _transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/completions"):
            return httpx.Response(200, json=TEXT_COMPLETION)
        return httpx.Response(200, json=RESPONSE)

    return httpx.MockTransport(answer)


async def test_the_openai_provider_sends_the_body_as_it_came_and_the_cache_keeps_it() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=_transport(seen)) as client:
        provider = OpenAICompatibleProvider("http://up/v1", model="m", http_client=client)
        cached = CachedProvider.wrap(provider)
        request = completions(prompt=["a", "b"], suffix="z", echo=True, logprobs=1)
        first = await cached.complete(request)
        again = await cached.complete(request)
        assert (first.content, again.cached, len(seen)) == ("hello world", True, 1)
        assert seen[0].url.path == "/v1/completions"
        assert json.loads(seen[0].content) == {
            "model": "m",
            "prompt": ["a", "b"],
            "suffix": "z",
            "echo": True,
            "logprobs": 1,
        }
        answer = await cached.complete(
            LLMRequest(operation=OPENAI_RESPONSES, model="m", extra={"input": "hi"})
        )
        assert seen[-1].url.path == "/v1/responses"
        assert (answer.content, answer.raw_format) == ("hi there", OPENAI_RESPONSES)
        with pytest.raises(UnsupportedFeature, match="operation"):
            await provider.complete(LLMRequest(operation="openai.audio", extra={"x": 1}))
        await cached.aclose()


@pytest.mark.parametrize("operation", [OPENAI_COMPLETIONS, OPENAI_RESPONSES])
async def test_other_providers_refuse_an_operation_before_any_io(operation: str) -> None:
    seen: list[httpx.Request] = []
    request = LLMRequest(operation=operation, model="m", extra={"input": "hi"})
    async with httpx.AsyncClient(transport=_transport(seen)) as client:
        for provider in (
            AnthropicProvider(api_key="k", http_client=client),
            OllamaProvider(http_client=client),
        ):
            with pytest.raises(UnsupportedFeature, match=operation):
                await provider.complete(request)
            with pytest.raises(UnsupportedFeature):
                async for _ in provider.stream(request):
                    pass
    assert seen == []
