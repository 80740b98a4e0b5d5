"""CachedProvider's dollars: an upstream call's answer is spent, an answer served without one
(hit, coalesced; JSON, stream, embeddings) is saved, at the price the cache was given."""

from __future__ import annotations

import asyncio

import pytest

from vex_llm import CachedProvider, LLMRequest, MockProvider
from vex_llm.embeddings import EmbeddingRequest
from vex_llm.pricing import Price

PRICE = Price(input_per_mtok=2.0, output_per_mtok=8.0)


def by_hand(prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * 2.0 / 1_000_000 + completion_tokens * 8.0 / 1_000_000


async def test_misses_spend_hits_and_coalesced_save() -> None:
    cached = CachedProvider(MockProvider.constant("x" * 40, latency=0.01), price=PRICE)
    request = LLMRequest(prompt="p")
    # Two identical concurrent misses: one upstream call, one caller coalesced.
    first, _ = await asyncio.gather(cached.complete(request), cached.complete(request))
    await cached.complete(request)  # a JSON hit
    async for _ in cached.stream(request):  # a stream hit
        pass
    one = by_hand(first.usage.prompt_tokens, first.usage.completion_tokens)
    assert one > 0
    stats = cached.stats()
    assert (stats.misses, stats.coalesced, stats.hits) == (1, 1, 2)
    assert stats.dollars_spent == pytest.approx(one)
    assert stats.dollars_saved == pytest.approx(3 * one)


async def test_a_stream_miss_spends_its_final_usage() -> None:
    cached = CachedProvider(MockProvider.constant("y" * 40), price=PRICE)
    usage = None
    async for chunk in cached.stream(LLMRequest(prompt="s")):
        usage = chunk.usage or usage
    assert usage is not None
    stats = cached.stats()
    assert stats.dollars_spent == pytest.approx(
        by_hand(usage.prompt_tokens, usage.completion_tokens)
    )
    assert stats.dollars_saved == 0.0


async def test_embeddings_spend_sent_tokens_and_save_the_cached_ones() -> None:
    cached = CachedProvider(MockProvider(), price=PRICE)
    first = await cached.embed(EmbeddingRequest(inputs=("a b c", "d e f")))
    again = await cached.embed(EmbeddingRequest(inputs=("a b c", "d e f")))
    assert again.tokens_saved == first.usage.prompt_tokens > 0
    stats = cached.stats()
    assert stats.dollars_spent == pytest.approx(by_hand(first.usage.prompt_tokens, 0))
    assert stats.dollars_saved == pytest.approx(by_hand(again.tokens_saved, 0))


async def test_without_a_price_the_dollars_are_unknown_not_zero() -> None:
    cached = CachedProvider(MockProvider.constant("z"))
    await cached.complete(LLMRequest(prompt="p"))
    await cached.complete(LLMRequest(prompt="p"))
    stats = cached.stats()
    assert stats.tokens_saved > 0
    assert (stats.dollars_spent, stats.dollars_saved) == (None, None)
