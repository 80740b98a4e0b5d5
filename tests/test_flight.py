"""Single-flight: identical concurrent misses call upstream once; errors and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from vex_llm import CacheControl, CachedProvider, LLMRequest, MockProvider, ServerError
from vex_llm.cache.flight import SingleFlight


async def test_many_concurrent_identical_misses_call_upstream_once() -> None:
    mock = MockProvider.constant("x", latency=0.05)
    cached = CachedProvider.wrap(mock)
    results = await asyncio.gather(*(cached.lookup(LLMRequest(prompt="p")) for _ in range(150)))
    assert mock.calls == 1
    outcomes = [r.outcome for r in results]
    assert outcomes.count("miss") == 1
    assert outcomes.count("coalesced") == 149
    assert {r.response.content for r in results} == {"x"}
    stats = cached.stats()
    assert (stats.misses, stats.coalesced, stats.hits) == (1, 149, 0)
    assert (await cached.lookup(LLMRequest(prompt="p"))).outcome == "hit"


async def test_failing_leader_fails_every_waiter_and_nothing_is_stored() -> None:
    mock = MockProvider.constant("ok", latency=0.05, error=ServerError(503, "down"), fail_times=1)
    cached = CachedProvider.wrap(mock)
    results = await asyncio.gather(
        *(cached.complete(LLMRequest(prompt="p")) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, ServerError) for r in results)
    assert mock.calls == 1
    assert cached.size() == 0
    assert cached.stats().errors == 1
    assert (await cached.complete(LLMRequest(prompt="p"))).content == "ok"
    assert mock.calls == 2


async def test_cancelled_caller_does_not_cancel_the_others() -> None:
    mock = MockProvider.constant("x", latency=0.1)
    cached = CachedProvider.wrap(mock)
    leader = asyncio.create_task(cached.complete(LLMRequest(prompt="p")))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(cached.complete(LLMRequest(prompt="p")))
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert (await follower).content == "x"
    assert mock.calls == 1
    assert cached.size() == 1


async def test_when_every_caller_cancels_the_upstream_call_is_cancelled() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(10)
        finished.set()
        return "never"

    flight: SingleFlight[str] = SingleFlight()
    callers = [asyncio.create_task(flight.run("k", slow)) for _ in range(3)]
    await started.wait()
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.sleep(0)
    assert len(flight) == 0
    assert not finished.is_set()
    # A newcomer starts a fresh call rather than joining the cancelled one.
    result, joined = await flight.run("k", _value)
    assert (result, joined) == ("fresh", False)


async def _value() -> str:
    return "fresh"


async def test_no_cache_requests_do_not_join() -> None:
    mock = MockProvider(responses=["a", "b", "c"], latency=0.05)
    cached = CachedProvider.wrap(mock)
    fresh = LLMRequest(prompt="p", cache=CacheControl(no_cache=True))
    results = await asyncio.gather(
        cached.lookup(LLMRequest(prompt="p")), cached.lookup(fresh), cached.lookup(fresh)
    )
    assert mock.calls == 3
    assert [r.outcome for r in results] == ["miss", "bypass", "bypass"]


async def test_different_keys_fly_separately() -> None:
    mock = MockProvider.constant("x", latency=0.02)
    cached = CachedProvider.wrap(mock)
    await asyncio.gather(*(cached.complete(LLMRequest(prompt=f"p{i % 5}")) for i in range(50)))
    assert mock.calls == 5
