"""The providers and the cache against a real LLM: llama-server with SmolLM2-135M-Instruct."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from vex_llm import (
    AnthropicProvider,
    CachedProvider,
    LLMCacheConfig,
    LLMRequest,
    OpenAICompatibleProvider,
    Usage,
)
from vex_llm.local import LlamaServer

from .conftest import CountingTransport, server_counter

pytestmark = pytest.mark.integration


def ask(prompt: str, max_tokens: int = 16) -> LLMRequest:
    return LLMRequest(
        prompt=prompt, system="Answer briefly.", temperature=0.0, max_tokens=max_tokens
    )


def openai(llama: LlamaServer, client: httpx.AsyncClient | None = None) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(llama.base_url, model=llama.alias, http_client=client)


async def test_real_completion_and_stream_agree(llama: LlamaServer) -> None:
    async with openai(llama) as provider:
        assert await provider.is_available()
        answer = await provider.complete(ask("What color is the sky?"))
        chunks = [c async for c in provider.stream(ask("What color is the sky?"))]
    assert answer.content.strip()
    assert answer.usage.prompt_tokens > 0
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.finish_reason in ("stop", "length")
    assert len(chunks) > 2  # token by token, not one blob
    assert [c.is_final for c in chunks].count(True) == 1
    assert chunks[-1].is_final
    assert chunks[-1].usage == answer.usage
    # temperature 0: the same answer, however it is delivered.
    assert "".join(c.delta for c in chunks) == answer.content


async def test_a_cached_repeat_never_reaches_the_server(
    llama: LlamaServer, counting: CountingTransport
) -> None:
    client = httpx.AsyncClient(transport=counting)
    cached = CachedProvider(openai(llama, client), LLMCacheConfig.default())
    async with client, cached:
        first = await cached.complete(ask("Name a fruit."))
        predicted = await server_counter(llama, "tokens_predicted_total")
        second = await cached.complete(ask("Name a fruit."))
        streamed = [c async for c in cached.stream(ask("Name a fruit."))]
        assert await server_counter(llama, "tokens_predicted_total") == predicted
    assert counting.paths["/v1/chat/completions"] == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.content == first.content == "".join(c.delta for c in streamed)


async def test_ten_identical_streams_make_one_upstream_request(
    llama: LlamaServer, counting: CountingTransport
) -> None:
    client = httpx.AsyncClient(transport=counting)
    cached = CachedProvider(openai(llama, client), LLMCacheConfig.default())
    request = ask("Count from one to five.", max_tokens=24)

    async def consume() -> tuple[str, Usage | None]:
        chunks = [c async for c in cached.stream(request)]
        return "".join(c.delta for c in chunks), chunks[-1].usage

    async with client, cached:
        before = await server_counter(llama, "tokens_predicted_total")
        results = await asyncio.gather(*(consume() for _ in range(10)))
        after = await server_counter(llama, "tokens_predicted_total")
    assert counting.paths["/v1/chat/completions"] == 1
    assert len(set(results)) == 1
    text, usage = results[0]
    assert text.strip()
    assert usage is not None
    assert after - before == usage.completion_tokens  # the server generated once
    stats = cached.stats()
    assert (stats.misses, stats.coalesced) == (1, 9)


async def test_anthropic_messages_against_the_real_server(llama: LlamaServer) -> None:
    async with AnthropicProvider(
        "unused-by-llama-server", model=llama.alias, base_url=llama.root_url
    ) as provider:
        answer = await provider.complete(ask("Say hello."))
        chunks = [c async for c in provider.stream(ask("Say hello."))]
    assert answer.content.strip()
    assert answer.usage.completion_tokens > 0
    assert len(chunks) > 2
    assert chunks[-1].is_final
    assert "".join(c.delta for c in chunks) == answer.content
