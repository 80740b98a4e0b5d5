"""A miss on a shared store costs two store operations: one reads or takes the lease, one writes
and releases it (it took five: read, lease, read again, write, release)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vex_llm import CacheControl, CachedProvider, LLMRequest, MockProvider
from vex_llm.cache.stores import AtomicLeaseStore, RedisStore, SQLiteStore, guard_store

from .servers import Server

OPERATIONS = (
    "get",
    "set",
    "get_or_lease",
    "set_and_release",
    "acquire_lease",
    "renew_lease",
    "release_lease",
    "lease_held",
)


def counted(store: Any) -> list[str]:
    """Record the name of every store operation called on ``store`` from now on."""
    calls: list[str] = []
    for name in OPERATIONS:
        real = getattr(store, name)

        async def op(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return await _real(*args)

        setattr(store, name, op)
    return calls


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        made: Any = SQLiteStore(tmp_path / "rt.db")
    else:
        server: Server = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=f"rt-{tmp_path.name}:")
    yield made
    await made.clear()
    await made.aclose()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_miss_is_two_store_operations_and_a_hit_one(store: Any, streamed: bool) -> None:
    assert isinstance(store, AtomicLeaseStore)
    cached = CachedProvider(MockProvider.constant("answer"), store=store)
    calls = counted(store)
    request = LLMRequest(prompt="two round trips")

    async def ask() -> str:
        if streamed:
            return "".join([c.delta async for c in cached.stream(request)])
        return (await cached.complete(request)).content

    assert await ask() == "answer"
    assert calls == ["get_or_lease", "set_and_release"]
    calls.clear()
    assert await ask() == "answer"
    assert calls == ["get_or_lease"]
    await cached.aclose()


async def test_behind_the_store_breaker_too(store: Any) -> None:
    calls = counted(store)  # what reaches the real store, through the breaker
    guarded = guard_store(store)
    assert isinstance(guarded, AtomicLeaseStore)
    cached = CachedProvider(MockProvider.constant("answer"), store=guarded)
    assert (await cached.complete(LLMRequest(prompt="guarded"))).content == "answer"
    assert calls == ["get_or_lease", "set_and_release"]
    await cached.aclose()


async def test_requests_that_take_no_lease_read_plainly(store: Any) -> None:
    cached = CachedProvider(MockProvider.constant("answer"), store=store)
    calls = counted(store)
    await cached.complete(LLMRequest(prompt="p", cache=CacheControl(no_store=True)))
    assert calls == ["get"]  # nothing will be stored: no lease for others to wait on
    calls.clear()
    await cached.complete(LLMRequest(prompt="p", cache=CacheControl(no_cache=True)))
    assert calls == ["set"]  # a fresh sample, stored; no read, no lease
    await cached.aclose()


async def test_the_lease_is_released_with_the_write(store: Any) -> None:
    cached = CachedProvider(MockProvider.constant("answer"), store=store)
    request = LLMRequest(prompt="released")
    await cached.complete(request)
    assert not await store.lease_held(cached.key_for(request))
    await cached.aclose()


async def test_concurrent_readers_in_one_process_make_one_call_and_leave_no_lease(
    store: Any,
) -> None:
    # Each reader may take the lease in its read; those that then find a call in flight
    # here join it and give their lease back.
    import asyncio

    mock = MockProvider.constant("answer", latency=0.05)
    cached = CachedProvider(mock, store=store)
    request = LLMRequest(prompt="together")
    results = await asyncio.gather(*(cached.complete_result(request) for _ in range(20)))
    assert mock.calls == 1
    assert {r.response.content for r in results} == {"answer"}
    key = cached.key_for(request)
    for _ in range(250):  # the unused leases are released in the background
        if not await store.lease_held(key):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("a lease taken by a joining reader was never released")
    await cached.aclose()
