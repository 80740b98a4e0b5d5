"""One path for complete() and stream(): one in-flight unit, one set of counters, one owner rule."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from tests.gated_store import GatedWrites
from vex_llm import (
    CachedProvider,
    InputLimits,
    InputTooLarge,
    LLMCacheConfig,
    LLMRequest,
    MemoryStore,
    MockProvider,
)
from vex_llm.cache.entry import CacheEntry

REQUEST = LLMRequest(prompt="one question", temperature=0.0)


async def test_stream_then_complete_in_flight_make_one_call() -> None:
    mock = MockProvider.constant("one answer for both", latency=0.05, chunk_size=4)
    cached = CachedProvider.wrap(mock)
    stream = await cached.open_stream(REQUEST)
    answer = asyncio.create_task(cached.complete_result(REQUEST))
    chunks = [c async for c in stream]
    result = await answer
    assert mock.calls == 1
    assert (stream.outcome, result.outcome) == ("miss", "coalesced")
    assert "".join(c.delta for c in chunks) == result.response.content == "one answer for both"
    assert len(chunks) > 2  # the stream was streamed, not replayed as one piece
    assert result.response.usage == chunks[-1].usage
    stats = cached.stats()
    assert (stats.misses, stats.coalesced, stats.entries) == (1, 1, 1)
    replay = [c async for c in cached.stream(REQUEST)]
    assert replay == chunks  # the recorded stream was stored


async def test_complete_then_stream_in_flight_make_one_call() -> None:
    mock = MockProvider.constant("one answer for both", latency=0.05)
    cached = CachedProvider.wrap(mock)
    answer = asyncio.create_task(cached.complete_result(REQUEST))
    await asyncio.sleep(0.01)  # the JSON call is in flight
    stream = await cached.open_stream(REQUEST)
    assert stream.outcome == "coalesced"
    chunks = [c async for c in stream]
    result = await answer
    assert mock.calls == 1
    assert result.outcome == "miss"
    assert "".join(c.delta for c in chunks) == result.response.content
    assert chunks[-1].is_final
    assert chunks[-1].usage == result.response.usage
    stats = cached.stats()
    assert (stats.misses, stats.coalesced) == (1, 1)
    assert stats.tokens_saved == result.response.usage.total_tokens


async def test_many_mixed_callers_make_one_call() -> None:
    mock = MockProvider.constant("mixed", latency=0.05)
    cached = CachedProvider.wrap(mock)

    async def streamed() -> str:
        return "".join([c.delta async for c in cached.stream(REQUEST)])

    async def completed() -> str:
        return (await cached.complete(REQUEST)).content

    answers = await asyncio.gather(*(streamed() if i % 2 else completed() for i in range(20)))
    assert set(answers) == {"mixed"}
    assert mock.calls == 1
    stats = cached.stats()
    assert (stats.misses, stats.coalesced) == (1, 19)


async def test_a_stream_joining_a_json_flight_after_its_answer_gets_the_replay() -> None:
    # A JSON-led flight makes its stream replay only for stream members: one that comes
    # while the answer is being stored still gets every chunk.
    mock = MockProvider.constant("answered before the stream came", chunk_size=5)
    store = GatedWrites()
    cached = CachedProvider(mock, store=store)
    answer = asyncio.create_task(cached.complete_result(REQUEST))
    async with asyncio.timeout(5):
        await store.writing.wait()
    stream = await cached.open_stream(REQUEST)
    store.gate.set()
    chunks = [c async for c in stream]
    result = await answer
    assert mock.calls == 1
    assert (result.outcome, stream.outcome) == ("miss", "coalesced")
    assert "".join(c.delta for c in chunks) == result.response.content
    assert chunks[-1].is_final
    assert chunks[-1].usage == result.response.usage


class BrokenWrites(MemoryStore):
    """A store whose writes hit a bug (not a store failure)."""

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        raise TypeError("a bug in the write path")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_bug_after_the_answer_is_raised_not_counted_as_a_store_error(
    streamed: bool,
) -> None:
    cached = CachedProvider(MockProvider.constant("x"), store=BrokenWrites(10))

    async def ask() -> None:
        if streamed:
            [c async for c in cached.stream(REQUEST)]
        else:
            await cached.complete(REQUEST)

    with pytest.raises(TypeError, match="a bug"):
        await ask()
    assert cached.stats().store_errors == 0


async def test_the_cache_limits_are_the_wrapped_providers() -> None:
    mock = MockProvider.constant("long answer")
    big = InputLimits(max_prompt_bytes=200_000)
    cached = CachedProvider(mock, LLMCacheConfig(limits=big))
    assert mock.limits == cached.limits == big
    long = LLMRequest(prompt="x" * 150_000)  # over the default 100 KiB
    assert (await cached.complete(long)).content == "long answer"  # the inner cap was lifted
    assert [c.delta async for c in cached.stream(LLMRequest(prompt="y" * 150_000))] != []
    small = InputLimits(max_prompt_bytes=10)
    cached.limits = small
    assert mock.limits == small
    with pytest.raises(InputTooLarge):
        await cached.complete(LLMRequest(prompt="z" * 11))
    # Without limits in the config, the wrapped provider's own are kept.
    assert CachedProvider(mock).limits == small


async def test_aclose_closes_only_a_store_it_made() -> None:
    given = MemoryStore(10)
    closed: list[str] = []
    real_aclose = given.aclose

    async def aclose() -> None:
        closed.append("given")
        await real_aclose()

    given.aclose = aclose  # type: ignore[method-assign]
    shared = [CachedProvider(MockProvider.constant(str(i)), store=given) for i in range(3)]
    for cached in shared:
        await cached.aclose()
    assert closed == []  # the store passed in is the caller's
    own = CachedProvider(MockProvider.constant("x"))
    own_aclose = own.store.aclose
    calls: list[str] = []

    async def spy() -> None:
        calls.append("own")
        await own_aclose()

    own.store.aclose = spy  # type: ignore[method-assign]
    await own.aclose()
    assert calls == ["own"]


async def test_old_names_still_work_with_a_warning() -> None:
    cached = CachedProvider.wrap(MockProvider.constant("x"))
    with pytest.warns(DeprecationWarning, match="complete_result"):
        assert (await cached.lookup(REQUEST)).outcome == "miss"
    with pytest.warns(DeprecationWarning, match="count"):
        assert cached.size() == 1
    with pytest.warns(DeprecationWarning, match="acount"):
        assert await cached.asize() == 1
    with pytest.warns(DeprecationWarning, match="CacheStoreWithSyncOps"):
        from vex_llm import SyncCacheStore  # type: ignore[attr-defined]
    from vex_llm import CacheStoreWithSyncOps

    assert SyncCacheStore is CacheStoreWithSyncOps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import vex_llm  # the package itself imports without touching the old names

        assert "SyncCacheStore" not in vex_llm.__all__


async def test_limits_reach_through_every_wrapper() -> None:
    from vex_llm.resilience import CircuitBreaker, FallbackProvider, RetryingProvider

    first, second = MockProvider.constant("a"), MockProvider.constant("b")
    stack = CachedProvider(
        RetryingProvider(CircuitBreaker(FallbackProvider([first, second]))),
        LLMCacheConfig(limits=InputLimits(max_prompt_bytes=200_000)),
    )
    assert first.limits.max_prompt_bytes == second.limits.max_prompt_bytes == 200_000
    assert (await stack.complete(LLMRequest(prompt="x" * 150_000))).content == "a"
