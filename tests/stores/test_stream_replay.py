"""A recorded stream survives every store: the hit replays the very same chunks."""

from __future__ import annotations

from typing import Any

from vex_llm import CachedProvider, LLMCacheConfig, LLMRequest, MockProvider


async def test_stream_is_replayed_from_every_store(make_store: Any) -> None:
    mock = MockProvider.constant("naïve café ☕ — streamed in pieces", chunk_size=5)
    cached = CachedProvider(mock, LLMCacheConfig.default(), store=await make_store())
    request = LLMRequest(prompt="p", temperature=0.0)
    first = await cached.open_stream(request)
    live = [c async for c in first]
    second = await cached.open_stream(request)
    replayed = [c async for c in second]
    assert (first.outcome, second.outcome) == ("miss", "hit")
    assert replayed == live
    assert mock.calls == 1
    answer = await cached.complete(request)  # and complete() is served from the stream
    assert answer.cached
    assert answer.content == "".join(c.delta for c in live)
