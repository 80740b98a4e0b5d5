"""OpenAICompatibleProvider against a loopback server speaking the Chat Completions format."""

from __future__ import annotations

import pytest

from vex_llm import (
    InvalidResponse,
    LLMRequest,
    Message,
    OpenAICompatibleProvider,
    Timeout,
    Usage,
)
from vex_llm.providers.openai_compat import MISTRAL_MODELS, OpenAIStreamDecoder, build_payload

from .fakes import LoopbackServer, Recorded, Reply, json_reply, sse

KEY = "sk-test-0123456789abcdef"


def completion(text: str = "Hello there", finish: str = "stop") -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "served-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def delta(text: str | None = None, finish: str | None = None) -> dict[str, object]:
    d = {} if text is None else {"content": text}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "served-model",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


USAGE_CHUNK = {"id": "c", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
STREAM = sse(delta(""), delta("Hel"), delta("lo"), delta(None, "stop"), USAGE_CHUNK, "[DONE]")


def full_request() -> LLMRequest:
    return LLMRequest(
        prompt="hi",
        system="be brief",
        messages=(Message("user", "earlier"), Message("assistant", "ok")),
        temperature=0.0,
        max_tokens=5,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        stop=("\n",),
        seed=7,
    )


async def test_complete_maps_every_field_and_parses_the_answer() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(completion())) as server,
        OpenAICompatibleProvider(f"{server.url}/v1/", KEY, "m") as provider,
    ):
        response = await provider.complete(full_request())
    assert response.content == "Hello there"
    assert response.model == "served-model"
    assert response.usage == Usage(11, 3)
    assert response.finish_reason == "stop"
    assert response.latency_ms > 0
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.0,
        "max_tokens": 5,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "stop": ["\n"],
        "seed": 7,
    }


async def test_request_model_overrides_the_default_and_no_key_sends_no_auth() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(completion())) as server,
        OpenAICompatibleProvider(f"{server.url}/v1", model="default-m") as provider,
    ):
        await provider.complete(LLMRequest(prompt="hi", model="other"))
    (request,) = server.requests
    assert request.json() == {"model": "other", "messages": [{"role": "user", "content": "hi"}]}
    assert "authorization" not in request.headers


async def test_stream_yields_tokens_then_one_final_chunk_with_usage() -> None:
    async with (
        LoopbackServer(lambda r: Reply(body=STREAM)) as server,
        OpenAICompatibleProvider(f"{server.url}/v1", KEY, "m") as provider,
    ):
        chunks = [c async for c in provider.stream(LLMRequest(prompt="hi"))]
    assert [c.delta for c in chunks] == ["", "Hel", "lo", "", "", ""]
    assert [c.is_final for c in chunks] == [False] * 5 + [True]
    # One chunk per upstream event, each keeping the event as it came; the terminal chunk
    # (from [DONE]) carries none.
    events = [s.decode()[len("data: ") :].strip() for s in STREAM if isinstance(s, bytes)]
    assert [c.raw for c in chunks] == [*events[:5], None]
    assert chunks[4].usage == Usage(11, 3)
    assert chunks[-1].usage == Usage(11, 3)
    assert chunks[-1].finish_reason == "stop"
    body = server.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert server.requests[0].headers["accept"] == "text/event-stream"


async def test_chunks_arrive_as_they_are_sent() -> None:
    # A pause between tokens: the first token must be yielded before the rest exists.
    body: list[bytes | float] = [*sse(delta("first")), 0.3, *sse(delta(None, "stop"), "[DONE]")]
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        OpenAICompatibleProvider(f"{server.url}/v1") as provider,
    ):
        stream = provider.stream(LLMRequest(prompt="hi"))
        first = await anext(stream)
        assert first.delta == "first"
        assert len(server.requests) == 1
        rest = [c async for c in stream]
    assert rest[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (sse(delta("Hel"), delta("lo")), r"\[DONE\]"),  # ends without [DONE]
        ([b"data: {not json\n\n"], "not valid JSON"),
        (sse({"error": {"message": "model crashed"}}), "model crashed"),
        (sse({"id": "x"}), "choices"),
        (sse(delta("a"), "[DONE]", delta("b")), None),  # junk after [DONE] is ignored
    ],
)
async def test_malformed_streams_are_invalid_responses(
    body: list[bytes | float], match: str | None
) -> None:
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        OpenAICompatibleProvider(f"{server.url}/v1") as provider,
    ):
        if match is None:
            chunks = [c async for c in provider.stream(LLMRequest(prompt="hi"))]
            assert "".join(c.delta for c in chunks) == "a"
            return
        with pytest.raises(InvalidResponse, match=match):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


async def test_a_stream_cut_mid_body_is_invalid() -> None:
    reply = Reply(body=sse(delta("Hel")), complete=False)
    async with (
        LoopbackServer(lambda r: reply) as server,
        OpenAICompatibleProvider(f"{server.url}/v1") as provider,
    ):
        with pytest.raises(InvalidResponse):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "x"},
        {"choices": []},
        {"choices": [{"message": {"role": "assistant", "content": None}}]},
        {"choices": [{"message": {"role": "assistant"}}]},
        {"error": {"message": "overloaded"}},
        {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}},
    ],
)
async def test_malformed_completions_are_invalid_never_empty_answers(
    doc: dict[str, object],
) -> None:
    async with (
        LoopbackServer(lambda r: json_reply(doc)) as server,
        OpenAICompatibleProvider(f"{server.url}/v1") as provider,
    ):
        with pytest.raises(InvalidResponse):
            await provider.complete(LLMRequest(prompt="hi"))


async def test_a_trickling_body_hits_the_overall_timeout() -> None:
    # Each piece arrives well within any per-read timeout; the whole does not.
    slow: list[bytes | float] = []
    for _ in range(20):
        slow += [0.05, *sse(delta("."))]
    async with (
        LoopbackServer(lambda r: Reply(body=slow)) as server,
        OpenAICompatibleProvider(f"{server.url}/v1", timeout=0.3) as provider,
    ):
        with pytest.raises(Timeout):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]
        with pytest.raises(Timeout):
            await provider.complete(LLMRequest(prompt="hi"))
        # The request's own timeout wins over the provider's default.
        with pytest.raises(Timeout, match=r"0\.2 s"):
            await provider.complete(LLMRequest(prompt="hi", timeout=0.2))


async def test_is_available_only_on_2xx_from_models() -> None:
    def handler(request: Recorded) -> Reply:
        ok = request.headers.get("authorization") == f"Bearer {KEY}"
        return json_reply({"data": []}) if ok else json_reply({"error": "bad key"}, status=401)

    async with (
        LoopbackServer(handler) as server,
        OpenAICompatibleProvider(f"{server.url}/v1", KEY) as good,
    ):
        assert await good.is_available()
        async with OpenAICompatibleProvider(f"{server.url}/v1", "wrong") as bad:
            assert not await bad.is_available()
    assert {r.path for r in server.requests} == {"/v1/models"}


def test_stream_decoder_is_pure() -> None:
    decoder = OpenAIStreamDecoder("m")
    assert (
        decoder.feed('{"choices":[{"delta":{"content":"a"},"finish_reason":null}]}')[0].delta == "a"
    )
    (finished,) = decoder.feed('{"choices":[{"delta":{},"finish_reason":"length"}]}')
    assert (finished.delta, finished.is_final) == ("", False)
    final = decoder.feed("[DONE]")[0]
    assert (final.finish_reason, final.usage) == ("length", None)
    with pytest.raises(InvalidResponse):
        decoder.feed("{}")
    with pytest.raises(InvalidResponse):
        OpenAIStreamDecoder("m").finish()


def test_presets() -> None:
    openai = OpenAICompatibleProvider.openai(KEY)
    assert openai.cache_identity() == (
        "openai-compatible",
        "https://api.openai.com/v1",
        "gpt-4o-mini",
    )
    assert openai.name() == "openai:gpt-4o-mini"
    assert OpenAICompatibleProvider.deepseek(KEY).base_url == "https://api.deepseek.com"
    assert OpenAICompatibleProvider.groq(KEY).base_url == "https://api.groq.com/openai/v1"
    mistral = OpenAICompatibleProvider.mistral(KEY, model="codestral")
    assert mistral.model == MISTRAL_MODELS["codestral"] == "codestral-latest"
    assert OpenAICompatibleProvider.mistral(KEY, model="large").model == "mistral-large-latest"
    payload = build_payload(
        LLMRequest(prompt="x", seed=3), "m", stream=True, seed_field=mistral.seed_field,
        stream_usage=mistral.stream_usage,
    )  # fmt: skip
    assert payload["random_seed"] == 3
    assert "seed" not in payload
    assert "stream_options" not in payload


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="timeout"):
        OpenAICompatibleProvider("http://localhost/v1", timeout=0)
    with pytest.raises(ValueError, match="model"):
        OpenAICompatibleProvider("http://localhost/v1", model="")
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleProvider("localhost:8080")
