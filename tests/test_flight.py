"""The in-flight unit: identical concurrent misses call upstream once; errors and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from vex_llm import (
    CacheControl,
    CachedProvider,
    LLMError,
    LLMRequest,
    LLMResponse,
    MockProvider,
    ServerError,
)
from vex_llm.cache.flight import Flight, Flights
from vex_llm.models import Chunk


async def test_many_concurrent_identical_misses_call_upstream_once() -> None:
    mock = MockProvider.constant("x", latency=0.05)
    cached = CachedProvider.wrap(mock)
    results = await asyncio.gather(
        *(cached.complete_result(LLMRequest(prompt="p")) for _ in range(150))
    )
    assert mock.calls == 1
    outcomes = [r.outcome for r in results]
    assert outcomes.count("miss") == 1
    assert outcomes.count("coalesced") == 149
    assert {r.response.content for r in results} == {"x"}
    stats = cached.stats()
    assert (stats.misses, stats.coalesced, stats.hits) == (1, 149, 0)
    assert (await cached.complete_result(LLMRequest(prompt="p"))).outcome == "hit"


async def test_failing_leader_fails_every_waiter_and_nothing_is_stored() -> None:
    mock = MockProvider.constant("ok", latency=0.05, error=ServerError(503, "down"), fail_times=1)
    cached = CachedProvider.wrap(mock)
    results = await asyncio.gather(
        *(cached.complete(LLMRequest(prompt="p")) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, ServerError) for r in results)
    assert mock.calls == 1
    assert cached.count() == 0
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
    assert cached.count() == 1


async def test_when_every_member_leaves_the_call_is_cancelled() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(flight: Flight) -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            flight.end(LLMError("cancelled"))
            raise
        finished.set()

    flights = Flights()
    flight = flights.start("k", slow, shared=True)
    for _ in range(3):
        flight.join()
    await started.wait()
    for _ in range(3):
        flight.leave()
    await asyncio.sleep(0)
    assert flights.get("k") is None  # nobody joins a flight being cancelled
    assert len(flights) == 0
    assert not finished.is_set()
    with pytest.raises(LLMError):
        await flight.result()


async def test_a_finished_flight_is_not_joined() -> None:
    async def answer(flight: Flight) -> None:
        flight.answered(LLMResponse("x", "m"))
        flight.end()

    flights = Flights()
    flight = flights.start("k", answer, shared=True)
    assert flights.get("k") is flight
    assert (await flight.result()).content == "x"
    assert flights.get("k") is None


async def test_no_cache_requests_do_not_join() -> None:
    mock = MockProvider(responses=["a", "b", "c"], latency=0.05)
    cached = CachedProvider.wrap(mock)
    fresh = LLMRequest(prompt="p", cache=CacheControl(no_cache=True))
    results = await asyncio.gather(
        cached.complete_result(LLMRequest(prompt="p")),
        cached.complete_result(fresh),
        cached.complete_result(fresh),
    )
    assert mock.calls == 3
    assert [r.outcome for r in results] == ["miss", "bypass", "bypass"]


async def test_different_keys_fly_separately() -> None:
    mock = MockProvider.constant("x", latency=0.02)
    cached = CachedProvider.wrap(mock)
    await asyncio.gather(*(cached.complete(LLMRequest(prompt=f"p{i % 5}")) for i in range(50)))
    assert mock.calls == 5


async def test_a_recording_past_its_limit_is_let_go_as_readers_pass_it() -> None:
    """An answer larger than the cache can hold is relayed, not kept: chunks every reader has
    passed are dropped, no newcomer may join, and the reader gets every chunk."""
    flights = Flights()
    release = asyncio.Event()
    sizes: list[int] = []

    async def run(flight: Flight) -> None:
        for i in range(200):
            flight.publish(Chunk(delta=f"piece{i:03d} " * 10))
            sizes.append(len(flight.chunks))
            await asyncio.sleep(0)
        flight.publish(Chunk(finish_reason="stop"))
        await release.wait()
        flight.end()

    flight = flights.start("k", run, shared=True, limit=5_000)
    flight.join()
    flight.read_up_to(1, 0)
    read = []
    while len(read) < 201:
        if len(read) < flight.count:
            read.append(flight.chunk(len(read)).delta)
            flight.read_up_to(1, len(read))
        else:
            await flight.changed()
    release.set()
    assert "".join(read) == "".join(f"piece{i:03d} " * 10 for i in range(200))
    assert flight.unrecorded
    assert max(sizes[100:]) <= 2  # past the limit, only what the reader has not read is kept
    assert flights.get("k") is None  # a newcomer could not be given the start
