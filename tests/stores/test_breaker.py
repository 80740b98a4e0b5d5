"""The store circuit breaker: the state machine on a fake clock, the wrapper on fake stores."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from vex_llm import CachedProvider, LLMCacheConfig, LLMRequest, MockProvider
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores import LeaseStore, MemoryStore, StoreError
from vex_llm.cache.stores.breaker import (
    BreakerStore,
    LeaseBreakerStore,
    StoreBreakerPolicy,
    StoreCircuit,
    guard_store,
)

from .test_conformance import entry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = StoreCircuit(StoreBreakerPolicy(failures=3, cooldown=5), Clock())
    for _ in range(5):  # a success in between resets the count
        assert breaker.record(False) is None
        assert breaker.record(False) is None
        assert breaker.record(True) is None
    assert breaker.state == "closed"
    assert breaker.allows()
    breaker.record(False)
    breaker.record(False)
    assert breaker.record(False) == "open"
    assert breaker.opens == 1


def test_cooldown_probe_then_close_or_reopen() -> None:
    clock = Clock()
    breaker = StoreCircuit(StoreBreakerPolicy(failures=1, cooldown=5), clock)
    breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allows()
    assert breaker.skipped == 1
    assert not breaker.probe_due()
    assert breaker.retry_in() == 5.0
    breaker.record(False)  # a late failure of an older call changes nothing
    clock.now += 4.9
    assert not breaker.probe_due()
    clock.now += 0.1
    assert breaker.probe_due()
    assert breaker.state == "half_open"
    assert not breaker.probe_due()  # one probe at a time
    assert not breaker.allows()  # requests still skip the store while it is probed
    breaker.record(True)  # a late success of an older call does not close it either
    assert breaker.state == "half_open"
    assert breaker.record(False, probe=True) == "open"  # the cooldown starts over
    assert breaker.retry_in() == 5.0
    assert breaker.opens == 1  # the same incident
    clock.now += 5
    assert breaker.probe_due()
    assert breaker.record(True, probe=True) == "closed"
    assert breaker.allows()
    assert breaker.record(False) == "open"  # a new incident
    assert breaker.opens == 2


def test_an_abandoned_probe_is_due_again_at_once() -> None:
    clock = Clock()
    breaker = StoreCircuit(StoreBreakerPolicy(failures=1, cooldown=5), clock)
    breaker.record(False)
    clock.now += 5
    assert breaker.probe_due()
    breaker.probe_abandoned()
    assert breaker.state == "open"
    assert breaker.probe_due()


@pytest.mark.parametrize(
    "options",
    [{"failures": 0}, {"cooldown": 0}, {"timeout": -1}, {"admin_timeout": float("inf")}],
)
def test_bad_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="breaker"):
        StoreBreakerPolicy(**options)  # type: ignore[arg-type]


class HangingStore(MemoryStore):
    """A store that hangs (a stopped server) or fails while told to, else a memory store."""

    def __init__(self) -> None:
        super().__init__(100)
        self.mode = "ok"
        self.calls = 0

    async def _maybe_fail(self) -> None:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "fail":
            raise StoreError("connection refused")

    async def get(self, key: str) -> CacheEntry | None:
        await self._maybe_fail()
        return await super().get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        await self._maybe_fail()
        return await super().set(key, entry, ttl, tti)


async def test_a_hung_store_costs_requests_nothing_once_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vex_llm.cache")
    inner = HangingStore()
    store = guard_store(inner, StoreBreakerPolicy(failures=2, cooldown=0.2, timeout=0.05))
    assert isinstance(store, BreakerStore)
    mock = MockProvider.constant("answer")
    cached = CachedProvider(mock, LLMCacheConfig(), store=store)
    await cached.complete(LLMRequest(prompt="warm"))
    inner.mode = "hang"
    started = time.perf_counter()
    await cached.complete(LLMRequest(prompt="p0"))  # read and write time out: open
    assert 0.09 < time.perf_counter() - started < 1.0
    assert store.breaker.state == "open"
    calls = inner.calls
    started = time.perf_counter()
    for i in range(50):
        assert (await cached.complete(LLMRequest(prompt=f"p{i + 1}"))).content == "answer"
    assert time.perf_counter() - started < 0.05  # no store call waited
    assert inner.calls == calls  # and none was made (the probe is not due yet)
    # The store comes back: a background probe closes the circuit, caching resumes.
    inner.mode = "ok"
    await asyncio.sleep(0.25)
    await cached.complete(LLMRequest(prompt="after"))  # starts the probe, still skips
    for _ in range(100):
        if store.breaker.state == "closed":
            break
        await asyncio.sleep(0.01)
    assert store.breaker.state == "closed"
    await cached.complete(LLMRequest(prompt="after"))
    assert (await cached.complete_result(LLMRequest(prompt="after"))).outcome == "hit"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # the cache's "store failed" and the breaker's "skipping it"
    assert "answers again" in caplog.text
    await cached.aclose()
    await store.aclose()  # a store passed in is the caller's to close


async def test_failures_that_are_not_timeouts_open_it_too() -> None:
    inner = HangingStore()
    store = guard_store(inner, StoreBreakerPolicy(failures=3, cooldown=60))
    inner.mode = "fail"
    for _ in range(3):
        with pytest.raises(StoreError, match="refused"):
            await store.get("k")
    with pytest.raises(StoreError, match="circuit is open"):
        await store.get("k")
    assert inner.calls == 3
    await store.aclose()


async def test_a_cancelled_caller_is_not_a_store_failure() -> None:
    inner = HangingStore()
    store = guard_store(inner, StoreBreakerPolicy(failures=1, timeout=10))
    inner.mode = "hang"
    task = asyncio.create_task(store.get("k"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(store, BreakerStore)
    assert store.breaker.state == "closed"
    await store.aclose()


async def test_guard_store_keeps_leases_and_leaves_memory_alone(tmp_path: object) -> None:
    from pathlib import Path

    from vex_llm.cache.stores import SQLiteStore

    memory = MemoryStore(10)
    assert guard_store(memory) is memory
    sqlite = SQLiteStore(Path(str(tmp_path)) / "b.db")
    guarded = guard_store(sqlite)
    assert isinstance(guarded, LeaseBreakerStore)
    assert isinstance(guarded, LeaseStore)
    assert guard_store(guarded) is guarded
    assert guard_store(sqlite, StoreBreakerPolicy(enabled=False)) is sqlite
    assert not isinstance(guard_store(HangingStore()), LeaseStore)
    assert await guarded.acquire_lease("k", "me", 5.0)
    assert await guarded.set("k", entry("v"), None, None)
    assert repr(guarded) == repr(sqlite)
    await guarded.aclose()
