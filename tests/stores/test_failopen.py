"""Fail-open: a broken store never fails a request; it is counted and logged once per incident."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from vex_llm import CachedProvider, LLMCacheConfig, LLMRequest, MockProvider
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores import MemoryStore, RedisStore, StoreError

from .servers import Server, binary

LOGGER = "vex_llm.cache"


class FlakyStore(MemoryStore):
    """A memory store that fails with ``failure`` while it is set."""

    def __init__(self) -> None:
        super().__init__(100)
        self.failure: BaseException | None = None

    async def get(self, key: str) -> CacheEntry | None:
        if self.failure is not None:
            raise self.failure
        return await super().get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        if self.failure is not None:
            raise self.failure
        return await super().set(key, entry, ttl, tti)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "failure", [StoreError("database is locked"), OSError(28, "No space left on device")]
)
async def test_store_failures_go_upstream_and_log_once_per_incident(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = FlakyStore()
    mock = MockProvider.constant("answer")
    cached = CachedProvider(mock, LLMCacheConfig(), store=store)
    request = LLMRequest(prompt="p")
    await cached.complete(request)
    store.failure = failure
    for _ in range(4):
        assert (await cached.complete(request)).content == "answer"
    assert mock.calls == 5  # every request was answered, from upstream
    assert cached.stats().store_errors == 8  # each read and each skipped write
    assert len(warnings(caplog)) == 1
    assert str(failure) in warnings(caplog)[0]

    store.failure = None  # recovered: caching resumes, and the recovery is noted
    await cached.complete(request)
    assert (await cached.complete_result(request)).outcome == "hit"
    assert "recovered" in caplog.text
    store.failure = failure  # a new incident gets a new line
    await cached.complete(request)
    assert len(warnings(caplog)) == 2


class FullDiskStore(MemoryStore):
    """Reads work, writes fail: a full disk under a SQLite file."""

    def __init__(self) -> None:
        super().__init__(100)
        self.full = True

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        if self.full:
            raise OSError(28, "No space left on device")
        return await super().set(key, entry, ttl, tti)


async def test_failing_writes_with_working_reads_log_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = FullDiskStore()
    cached = CachedProvider(MockProvider.smart(), LLMCacheConfig(), store=store)
    for i in range(4):  # each request reads (fine), then fails to write
        await cached.complete(LLMRequest(prompt=f"p{i}"))
    assert cached.stats().store_errors == 4
    assert len(warnings(caplog)) == 1  # one incident, not one line per request
    assert "recovered" not in caplog.text  # a working read does not end a write outage
    store.full = False
    await cached.complete(LLMRequest(prompt="p-last"))
    assert caplog.text.count("recovered") == 1
    assert len(warnings(caplog)) == 1


async def test_programming_errors_are_not_swallowed() -> None:
    store = FlakyStore()
    store.failure = TypeError("a bug in a store")
    cached = CachedProvider(MockProvider.constant("x"), LLMCacheConfig(), store=store)
    with pytest.raises(TypeError, match="a bug"):
        await cached.complete(LLMRequest(prompt="p"))


PASSWORD = "pw-not-shown"


@pytest.fixture
def own_redis() -> Iterator[Server]:
    path = binary("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed; run scripts/install-redis.sh")
    server = Server(path, extra_args=("--requirepass", PASSWORD)).start()
    yield server
    server.stop()


async def test_redis_stopped_mid_run_then_restarted(
    own_redis: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    mock = MockProvider.constant("answer")
    store = RedisStore(f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0")
    cached = CachedProvider(mock, LLMCacheConfig(), store=store)
    request = LLMRequest(prompt="p")
    assert (await cached.complete_result(request)).outcome == "miss"
    assert (await cached.complete_result(request)).outcome == "hit"

    own_redis.stop()
    for _ in range(5):
        result = await cached.complete_result(request)  # every request still succeeds
        assert result.response.content == "answer"
        assert result.outcome == "miss"
    assert mock.calls == 6
    assert len(warnings(caplog)) == 1
    with pytest.raises(StoreError):  # admin calls do not pretend: the store is down
        await cached.astats()

    own_redis.start()  # same port, empty (no persistence)
    assert (await cached.complete_result(request)).outcome == "miss"
    assert (await cached.complete_result(request)).outcome == "hit"
    stats = await cached.astats()
    # Each request during the outage: a failed read, lease and write (one per operation).
    assert stats.store_errors == 15
    assert (stats.hits, stats.entries) == (2, 1)
    assert "recovered" in caplog.text
    assert PASSWORD not in caplog.text
    await cached.aclose()
    await store.aclose()  # a store passed in is the caller's to close


async def test_a_store_that_flips_between_failing_and_working_is_not_a_line_per_flip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = FlakyStore()
    cached = CachedProvider(MockProvider.constant("answer"), LLMCacheConfig(), store=store)
    for i in range(100):  # every other request finds the store down
        store.failure = StoreError("timeout") if i % 2 else None
        assert (await cached.complete(LLMRequest(prompt=f"p{i}"))).content == "answer"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) <= 3  # failed, recovered, then "intermittently" once per window
    assert any("intermittently" in line for line in lines)
    assert cached.stats().store_errors == 100  # each failed read and write still counts
