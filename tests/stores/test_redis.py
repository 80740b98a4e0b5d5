"""RedisStore specifics: prefix isolation, server-side expiry, errors, the missing extra."""

from __future__ import annotations

import asyncio
import builtins
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from vex_llm import CachedProvider, LLMCacheConfig, MockProvider
from vex_llm.cache.stores import CacheStoreWithSyncOps, RedisStore, StoreError
from vex_llm.cache.stores.redis import glob_escape, to_millis

from .servers import Server, free_port
from .test_conformance import entry


@pytest.fixture
async def client(redis_server: Server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}:"


def test_pure_helpers() -> None:
    assert to_millis(None) == ""
    assert to_millis(0.0001) == "1"
    assert to_millis(1.5) == "1500"
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


async def test_clear_touches_only_its_prefix(client: aioredis.Redis) -> None:
    p = prefix()
    mine = RedisStore(client, prefix=p)
    other = RedisStore(client, prefix=p[:-1] + "x:")
    star = RedisStore(client, prefix=p[:-1] + "*:")  # glob characters must not widen SCAN
    await client.set("unrelated-key", b"keep me")
    await mine.set("k", entry("mine"), None, None)
    await other.set("k", entry("other"), None, None)
    await star.set("k", entry("star"), None, None)
    await client.set(p + "e:untracked", b"written by hand")  # SCAN still finds it
    await star.clear()
    assert await mine.get("k") is not None
    await mine.clear()
    assert await client.get(p + "e:untracked") is None
    assert await mine.count() == 0
    got = await other.get("k")
    assert got is not None
    assert got.response.content == "other"
    assert await client.get("unrelated-key") == b"keep me"
    await other.clear()
    await client.delete("unrelated-key")
    assert not [k async for k in client.scan_iter(match=p[:-1] + "*")]
    # Closing a store does not close a client it was given.
    await mine.aclose()
    assert await client.ping()


async def test_idle_refresh_is_capped_by_the_deadline_on_the_server(
    client: aioredis.Redis,
) -> None:
    p = prefix()
    store = RedisStore(client, prefix=p)
    await store.set("k", entry("v"), 1.0, 0.8)
    assert 700 < await client.pttl(p + "e:k") <= 800  # the idle limit comes first
    await asyncio.sleep(0.5)
    await store.get("k")
    assert 0 < await client.pttl(p + "e:k") <= 500  # refreshed, but only up to the ttl
    await store.clear()


async def test_store_lifetimes_bound_per_entry_ones(client: aioredis.Redis) -> None:
    p = prefix()
    store = RedisStore(client, prefix=p, ttl=2.0, tti=1.0)
    await store.set("k", entry("v"), 60.0, None)
    assert 0 < await client.pttl(p + "e:k") <= 1000
    await store.clear()


async def test_corrupt_value_reads_as_a_miss(client: aioredis.Redis) -> None:
    p = prefix()
    store = RedisStore(client, prefix=p)
    await store.set("k", entry("v"), None, None)
    await client.hset(p + "e:k", "v", b"\x80 not json")
    assert await store.get("k") is None
    assert await client.exists(p + "e:k") == 0
    assert await store.count() == 0


async def test_redis_is_async_only(redis_server: Server) -> None:
    store = RedisStore(redis_server.url, prefix=prefix())
    assert not isinstance(store, CacheStoreWithSyncOps)
    cached = CachedProvider(MockProvider.constant("x"), LLMCacheConfig(), store=store)
    with pytest.raises(TypeError, match="astats"):
        cached.stats()
    assert (await cached.astats()).entries == 0
    await cached.aclose()
    await store.aclose()  # a store passed in is the caller's to close


async def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = RedisStore(f"redis://app:s3cret-pw@127.0.0.1:{free_port()}/0", prefix=prefix())
    assert "s3cret-pw" not in repr(store)
    with pytest.raises(StoreError) as caught:
        await store.get("k")
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.get("k")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        RedisStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix"):
        RedisStore("redis://127.0.0.1/0", prefix="")


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_redis(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "redis" or name.startswith("redis."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_redis)
    with pytest.raises(ImportError, match=r"vex-llm\[redis\]"):
        RedisStore("redis://127.0.0.1/0")


async def test_many_concurrent_calls_wait_for_a_connection_instead_of_failing(
    redis_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py's pool refuses the 101st concurrent command (MaxConnectionsError): at 200
    # concurrent requests, 300+ store operations failed and the log got 566 lines in 90 s.
    store = RedisStore(redis_server.url, prefix=prefix())
    await store.set("k", entry("v"), None, None)
    results = await asyncio.gather(*(store.get("k") for _ in range(300)), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    pool = store.client.connection_pool
    assert pool.max_connections <= 64  # bounded, so 200 requests do not open 200 sockets
    cached = CachedProvider(MockProvider.smart(), LLMCacheConfig(), store=store)
    with caplog.at_level("WARNING", logger="vex_llm.cache"):
        await asyncio.gather(*(cached.complete(_request(i)) for i in range(200)))
    assert (await cached.astats()).store_errors == 0
    assert caplog.records == []
    await store.clear()
    await cached.aclose()
    await store.aclose()  # a store passed in is the caller's to close


def _request(i: int) -> Any:
    from vex_llm import LLMRequest

    return LLMRequest(prompt=f"question {i}")
