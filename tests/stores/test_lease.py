"""Cross-process single-flight: the timing rules, and the waiting loop driven by a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vex_llm import (
    CacheControl,
    CachedProvider,
    LLMCacheConfig,
    LLMRequest,
    MockProvider,
    SQLiteStore,
)
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.lease import (
    LeasePolicy,
    fetch_with_lease,
    poll_delay,
    renew_interval,
    waited_too_long,
)
from vex_llm.cache.stores import StoreError

from .test_conformance import entry


def test_policy_rules() -> None:
    policy = LeasePolicy(ttl=6.0, max_wait=10.0, first_poll=0.01, max_poll=0.1, factor=2.0)
    assert renew_interval(policy) == 2.0
    delays = [poll_delay(policy, n, 0.5) for n in range(6)]
    assert delays == [0.01, 0.02, 0.04, 0.08, 0.1, 0.1]
    assert poll_delay(policy, 0, 0.0) == 0.0075
    assert poll_delay(policy, 0, 0.999) < 0.0125
    assert poll_delay(policy, 10_000, 0.5) == 0.1  # no overflow on long waits
    assert not waited_too_long(policy, 100.0, 109.9)
    assert waited_too_long(policy, 100.0, 110.0)
    with pytest.raises(ValueError, match="ttl"):
        LeasePolicy(ttl=0)
    with pytest.raises(ValueError, match="max_poll"):
        LeasePolicy(first_poll=1.0, max_poll=0.5)


class FakeLeases:
    """A LeaseStore whose other holder is scripted by the test; records what happened."""

    def __init__(self, *, held_by_other: bool = False, fail: bool = False) -> None:
        self.holder: str | None = "other" if held_by_other else None
        self.fail = fail
        self.log: list[str] = []

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        if self.fail:
            raise StoreError("down")
        self.log.append(f"acquire {owner}")
        if self.holder is None:
            self.holder = owner
            return True
        return False

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        return self.holder == owner

    async def release_lease(self, key: str, owner: str) -> None:
        self.log.append(f"release {owner}")
        if self.holder == owner:
            self.holder = None

    async def lease_held(self, key: str) -> bool:
        return self.holder is not None


class Harness:
    def __init__(self, store: FakeLeases) -> None:
        self.store = store
        self.now = 0.0
        self.value: CacheEntry | None = None
        self.fetches = 0
        self.errors: list[BaseException] = []
        self.on_sleep = lambda: None

    async def read(self, key: str) -> CacheEntry | None:
        return self.value

    async def fetch(self, holding: bool) -> bool:
        self.fetches += 1
        return False  # released by the lease loop, not by the write

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()

    async def run(self, policy: LeasePolicy | None = None) -> str:
        """What answered: ``fetched`` (this process) or the other process's stored content."""
        entry = await fetch_with_lease(
            self.store,  # type: ignore[arg-type]
            "k",
            "me",
            policy or LeasePolicy(max_wait=1.0),
            read=self.read,
            fetch=self.fetch,
            on_error=self.errors.append,
            clock=lambda: self.now,
            sleep=self.sleep,
        )
        return "fetched" if entry is None else entry.response.content


async def test_free_key_is_fetched_under_the_lease_and_released() -> None:
    h = Harness(FakeLeases())
    assert await h.run() == "fetched"
    assert h.fetches == 1
    assert h.store.log == ["acquire me", "release me"]
    assert h.store.holder is None


async def test_waiter_gets_the_holders_value() -> None:
    h = Harness(FakeLeases(held_by_other=True))
    polls = 0

    def other_finishes() -> None:
        nonlocal polls
        polls += 1
        if polls == 3:
            h.value = entry("from the other process")
            h.store.holder = None

    h.on_sleep = other_finishes
    assert await h.run() == "from the other process"
    assert h.fetches == 0


async def test_holder_that_fails_hands_over() -> None:
    h = Harness(FakeLeases(held_by_other=True))
    h.on_sleep = lambda: setattr(h.store, "holder", None)  # gone, and stored nothing
    assert await h.run() == "fetched"
    assert h.fetches == 1
    assert h.store.log[-2:] == ["acquire me", "release me"]


async def test_value_stored_just_before_we_took_the_lease_is_used() -> None:
    h = Harness(FakeLeases())
    reads = 0

    async def read(key: str) -> CacheEntry | None:
        nonlocal reads
        reads += 1
        return entry("already there")

    h.read = read  # type: ignore[method-assign]
    assert (await h.run(), h.fetches) == ("already there", 0)
    assert h.store.holder is None


async def test_waiting_is_bounded() -> None:
    h = Harness(FakeLeases(held_by_other=True))  # the holder never finishes
    assert await h.run(LeasePolicy(max_wait=2.0, max_poll=0.2)) == "fetched"
    assert h.fetches == 1
    assert 2.0 <= h.now < 2.3


async def test_store_failure_fails_open() -> None:
    h = Harness(FakeLeases(fail=True))
    assert (await h.run(), h.fetches) == ("fetched", 1)
    assert [type(e) for e in h.errors] == [StoreError]


async def test_two_caches_on_one_file_share_one_call(tmp_path: Path) -> None:
    """Two caches (as two processes would) on one SQLite file: one upstream call."""
    mocks = [MockProvider.constant("answer", latency=0.3) for _ in range(2)]
    caches = [
        CachedProvider(m, LLMCacheConfig(), store=SQLiteStore(tmp_path / "l.db"), lease=None)
        for m in mocks
    ]
    request = LLMRequest(prompt="same")
    results = await asyncio.gather(*(c.complete_result(request) for c in caches for _ in range(5)))
    assert sum(m.calls for m in mocks) == 1
    assert sorted(r.outcome for r in results) == ["coalesced"] * 9 + ["miss"]
    stats = [await c.astats() for c in caches]
    assert sum(s.coalesced for s in stats) == 9
    assert sum(s.tokens_saved for s in stats) == 9 * results[0].response.usage.total_tokens
    for c in caches:
        await c.aclose()
        await c.store.aclose()  # a store passed in is the caller's to close


async def test_lease_renewal_keeps_others_waiting(tmp_path: Path) -> None:
    """A call longer than the lease ttl keeps its lease (renewed), so others still wait."""
    policy = LeasePolicy(ttl=0.15, first_poll=0.01, max_poll=0.02)
    mocks = [MockProvider.constant("slow", latency=0.5) for _ in range(2)]
    caches = [
        CachedProvider(m, LLMCacheConfig(), store=SQLiteStore(tmp_path / "r.db"), lease=policy)
        for m in mocks
    ]
    request = LLMRequest(prompt="slow one")
    await asyncio.gather(*(c.complete(request) for c in caches))
    assert sum(m.calls for m in mocks) == 1
    for c in caches:
        await c.aclose()
        await c.store.aclose()  # a store passed in is the caller's to close


async def test_no_store_requests_take_no_lease(tmp_path: Path) -> None:
    """Nothing will be stored for them, so nobody should wait for them either."""
    mocks = [MockProvider.constant("private", latency=0.3) for _ in range(2)]
    caches = [
        CachedProvider(m, LLMCacheConfig(), store=SQLiteStore(tmp_path / "n.db")) for m in mocks
    ]
    request = LLMRequest(prompt="secret", cache=CacheControl(no_store=True))
    began = asyncio.get_running_loop().time()
    await asyncio.gather(*(c.complete(request) for c in caches))
    assert sum(m.calls for m in mocks) == 2
    assert asyncio.get_running_loop().time() - began < 0.55  # side by side, not one after another
    for c in caches:
        await c.aclose()
        await c.store.aclose()  # a store passed in is the caller's to close


class StubbornRenewals(FakeLeases):
    """A store whose renewal hangs and swallows its cancellation (as redis-py did under load)."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals = 0
        self.unblock = asyncio.Event()
        self.renewal_over = asyncio.Event()

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        self.renewals += 1
        try:
            while not self.unblock.is_set():
                try:
                    await self.unblock.wait()
                except asyncio.CancelledError:
                    continue  # swallowed
            return True
        finally:
            self.renewal_over.set()


async def test_a_renewer_swallowing_its_cancellation_neither_hangs_nor_renews_on() -> None:
    store = StubbornRenewals()
    policy = LeasePolicy(ttl=0.3)  # renews every 0.1 s
    fetched = asyncio.Event()

    async def fetch(holding: bool) -> bool:
        await asyncio.sleep(0.25)  # long enough for a renewal to start (and hang)
        fetched.set()
        return False

    async def read(key: str) -> CacheEntry | None:
        return None

    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await fetch_with_lease(
        store,  # type: ignore[arg-type]
        "k",
        "me",
        policy,
        read=read,
        fetch=fetch,
        on_error=lambda exc: None,
    )
    assert result is None
    assert fetched.is_set()
    # Bounded: the fetch (0.25 s) plus at most one ttl for the stuck renewer, not forever.
    assert loop.time() - began < 0.25 + 0.3 + 0.25
    assert store.renewals == 1
    assert store.log[-1] == "release me"  # the lease was given back regardless
    store.unblock.set()  # the stuck call returns at last...
    await store.renewal_over.wait()
    for _ in range(3):
        await asyncio.sleep(0.1)  # ...and the renewer, told to stop, renews no more
    assert store.renewals == 1
