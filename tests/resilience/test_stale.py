"""Stale-if-error in CachedProvider, with a manual clock: fresh, stale, expired; what may be
answered stale (5xx, timeouts, an open breaker; never a 4xx, never ``no_cache``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import ManualClock
from tests.resilience.scripted import FakeClock, ScriptedProvider
from vex_llm import (
    CacheControl,
    CachedProvider,
    CacheMiss,
    Chunk,
    ConnectionFailed,
    LLMCacheConfig,
    LLMRequest,
    RequestFailed,
    ServerError,
    Timeout,
)
from vex_llm.cache.staleness import covers, freshness, store_expiry
from vex_llm.resilience import BreakerPolicy, CircuitBreaker

CONFIG = LLMCacheConfig(ttl=60, tti=None, stale_if_error=600)
REQUEST = LLMRequest(prompt="hello", temperature=0.0)


def test_freshness() -> None:
    assert freshness(10, 60, 600) == "fresh"
    assert freshness(60, 60, 600) == "fresh"
    assert freshness(61, 60, 600) == "stale"
    assert freshness(660, 60, 600) == "stale"
    assert freshness(661, 60, 600) == "expired"
    assert freshness(100, 60, None) == "expired"
    assert freshness(100, None, None) == "fresh"
    assert freshness(100, 60, 600, accepted=30) == "expired"  # the request accepts less
    assert freshness(100, 60, 600, accepted=40) == "stale"
    assert freshness(100, 60, 30, accepted=3600) == "expired"  # ...but cannot extend


def test_entries_are_kept_for_the_grace_unless_the_request_shortened_the_ttl() -> None:
    assert store_expiry(CONFIG, CacheControl()) == (660.0, None)
    assert store_expiry(CONFIG, CacheControl(ttl=10)) == (10.0, None)
    assert store_expiry(LLMCacheConfig(ttl=60, tti=30), CacheControl()) == (60.0, 30.0)
    assert CONFIG.kept_for == 660.0


def test_what_a_stale_answer_may_cover() -> None:
    assert covers(ServerError(503))
    assert covers(ConnectionFailed())
    assert covers(Timeout())
    assert not covers(RequestFailed(400))
    assert not covers(ValueError())


async def stored(clock: ManualClock, upstream: ScriptedProvider) -> CachedProvider:
    cached = CachedProvider(upstream, CONFIG, clock=clock)
    assert (await cached.complete(REQUEST)).content == "first"
    return cached


async def test_a_failing_upstream_is_answered_stale_then_fresh_again(clock: ManualClock) -> None:
    upstream = ScriptedProvider(["first", ServerError(503), "second"])
    cached = await stored(clock, upstream)
    clock.advance(30)
    assert (await cached.complete_result(REQUEST)).outcome == "hit"
    clock.advance(70)  # 100 s old: stale
    result = await cached.complete_result(REQUEST)
    assert (result.outcome, result.response.content, result.age) == ("stale", "first", 100.0)
    assert upstream.calls == 2  # it did try the upstream first
    result = await cached.complete_result(REQUEST)  # the upstream is back: a fresh answer
    assert (result.outcome, result.response.content) == ("miss", "second")
    assert (await cached.complete_result(REQUEST)).outcome == "hit"
    stats = cached.stats()
    assert (stats.stale, stats.errors, stats.hits) == (1, 1, 2)


@pytest.mark.parametrize(
    "control",
    [CacheControl(no_cache=True), CacheControl(stale_if_error=10)],
    ids=["no-cache", "stale-if-error=10"],
)
async def test_no_stale_answer_when_the_request_refuses_it(
    clock: ManualClock, control: CacheControl
) -> None:
    cached = await stored(clock, ScriptedProvider(["first"], then=ServerError(503)))
    clock.advance(100)
    with pytest.raises(ServerError):
        await cached.complete(LLMRequest(prompt="hello", temperature=0.0, cache=control))
    allowed = LLMRequest(prompt="hello", temperature=0.0, cache=CacheControl(stale_if_error=60))
    assert (await cached.complete(allowed)).content == "first"


async def test_no_stale_answer_for_a_4xx_past_the_grace_or_only_if_cached(
    clock: ManualClock,
) -> None:
    cached = await stored(clock, ScriptedProvider(["first", RequestFailed(400)]))
    clock.advance(100)
    with pytest.raises(RequestFailed):
        await cached.complete(REQUEST)  # the request itself is refused: not an outage
    with pytest.raises(CacheMiss):
        await cached.complete(
            LLMRequest(prompt="hello", temperature=0.0, cache=CacheControl(only_if_cached=True))
        )
    cached = await stored(clock, ScriptedProvider(["first"], then=ServerError(503)))
    clock.advance(661)
    with pytest.raises(ServerError):
        await cached.complete(REQUEST)


async def test_an_open_breaker_and_a_timeout_are_answered_stale(clock: ManualClock) -> None:
    fake = FakeClock()
    upstream = ScriptedProvider(["first"], then=ServerError(500))
    breaker = CircuitBreaker(upstream, BreakerPolicy(min_calls=1), clock=fake)
    cached = CachedProvider(breaker, CONFIG, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(100)
    assert (await cached.complete_result(REQUEST)).outcome == "stale"  # the 500 opened it
    assert breaker.state == "open"
    result = await cached.complete_result(REQUEST)
    assert result.outcome == "stale"  # NotAvailable, at once
    assert upstream.calls == 2

    class Hung(ScriptedProvider):
        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            if self.calls:
                await asyncio.sleep(30)
            return await super().complete(request)

    cached = CachedProvider(Hung(["first"]), CONFIG, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(100)
    hurried = LLMRequest(prompt="hello", temperature=0.0, timeout=0.05)
    assert (await cached.complete_result(hurried)).outcome == "stale"


async def test_joined_callers_each_get_the_stale_answer(clock: ManualClock) -> None:
    gate = asyncio.Event()

    class Gated(ScriptedProvider):
        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            if self.calls:
                await gate.wait()
            return await super().complete(request)

    upstream = Gated(["first", ServerError(503)])
    cached = await stored(clock, upstream)
    clock.advance(100)
    calls = [asyncio.create_task(cached.complete_result(REQUEST)) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*calls)
    assert [r.outcome for r in results] == ["stale"] * 3
    assert upstream.calls == 2


class StreamingScript(ScriptedProvider):
    """Streams ``first`` in two chunks; later calls fail before or after their first chunk."""

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        async for chunk in super().stream(request):
            yield chunk


async def test_a_stream_is_answered_stale_only_before_its_first_chunk(
    clock: ManualClock,
) -> None:
    upstream = StreamingScript(["first", ServerError(503)])
    cached = CachedProvider(upstream, CONFIG, clock=clock)
    assert "".join([c.delta async for c in cached.stream(REQUEST)]) == "first"
    clock.advance(100)
    stream = await cached.open_stream(REQUEST)
    assert (stream.outcome, stream.age) == ("stale", 100.0)
    chunks = [c async for c in stream]
    assert "".join(c.delta for c in chunks) == "first"
    assert chunks[-1].is_final
    late = StreamingScript(["first", ServerError(503)], fail_after_first=True)
    cached = CachedProvider(late, CONFIG, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(100)
    stream = await cached.open_stream(REQUEST)
    assert stream.outcome == "miss"  # a chunk arrived: from here on the stream is live
    with pytest.raises(ServerError):
        async for _chunk in stream:
            pass


SWR = LLMCacheConfig(ttl=60, tti=None, stale_while_revalidate=30)


def test_freshness_with_a_revalidate_window() -> None:
    assert freshness(70, 60, None, revalidate=30) == "revalidate"
    assert freshness(90, 60, None, revalidate=30) == "revalidate"
    assert freshness(91, 60, None, revalidate=30) == "expired"
    assert freshness(91, 60, 600, revalidate=30) == "stale"  # stale-if-error beyond it
    assert SWR.kept_for == 90.0
    assert LLMCacheConfig(ttl=60, stale_if_error=10, stale_while_revalidate=30).kept_for == 90


async def test_stale_while_revalidate_answers_at_once_and_refreshes_once(
    clock: ManualClock,
) -> None:
    gate = asyncio.Event()

    class Gated(ScriptedProvider):
        started = 0

        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            self.started += 1
            if self.calls:
                await gate.wait()
            return await super().complete(request)

    upstream = Gated(["first", "second"])
    cached = CachedProvider(upstream, SWR, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(70)
    results = [await cached.complete_result(REQUEST) for _ in range(3)]
    assert [(r.outcome, r.response.content) for r in results] == [("stale", "first")] * 3
    assert results[0].age == 70.0
    stream = await cached.open_stream(REQUEST)
    assert stream.outcome == "stale"
    assert "".join([c.delta async for c in stream]) == "first"
    await asyncio.sleep(0.01)
    assert upstream.started == 2  # one background refresh for all of them
    gate.set()
    for _ in range(100):
        if (await cached.complete_result(REQUEST)).response.content == "second":
            break
        await asyncio.sleep(0.001)
    result = await cached.complete_result(REQUEST)
    assert (result.outcome, result.response.content) == ("hit", "second")
    assert upstream.calls == 2


async def test_a_failed_refresh_keeps_the_entry_and_past_the_window_is_a_miss(
    clock: ManualClock,
) -> None:
    upstream = ScriptedProvider(["first", ServerError(503), "second"])
    cached = CachedProvider(upstream, SWR, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(70)
    assert (await cached.complete_result(REQUEST)).response.content == "first"
    await asyncio.sleep(0.01)  # the refresh failed in the background
    assert cached.stats().errors == 1
    assert (await cached.complete_result(REQUEST)).response.content == "first"
    await asyncio.sleep(0.01)  # this one's refresh succeeded
    assert (await cached.complete_result(REQUEST)).outcome == "hit"
    clock.advance(100)  # 100 s old: past ttl + 30 s
    result = await cached.complete_result(REQUEST)
    assert (result.outcome, result.response.content) == ("miss", "ok")
