"""Per-tenant clear, on every store of the conformance suite (memory, SQLite, Redis, Valkey,
Redis Cluster): only the tenant's entries go, counts and bytes follow, and entries the
tenant writes during the clear are either gone or whole afterwards, never half."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from vex_llm.cache.key import tenant_key_prefix
from vex_llm.cache.stores import CacheStore, RedisStore, SQLiteStore

from .conftest import StoreFactory
from .servers import Server
from .test_conformance import entry


def key(tenant: str | None, name: str) -> str:
    """A store key of ``tenant`` as the cache builds it (the tail is any hash)."""
    return tenant_key_prefix(tenant) + name


async def fill(store: CacheStore, tenant: str | None, names: list[str]) -> dict[str, int]:
    """Store one entry per name for ``tenant``; their keys and sizes."""
    sizes = {}
    for name in names:
        value = entry(f"{tenant}/{name}")
        await store.set(key(tenant, name), value, None, None)
        sizes[key(tenant, name)] = value.nbytes
    return sizes


async def present(store: CacheStore, keys: list[str]) -> list[str]:
    return [k for k in keys if await store.get(k) is not None]


async def test_clear_tenant_removes_that_tenants_entries_only(make_store: StoreFactory) -> None:
    store = await make_store()
    mine = await fill(store, "a", [f"{i:064x}" for i in range(5)])
    others = {
        **await fill(store, "b", ["0" * 64, "1" * 64]),
        **await fill(store, None, ["0" * 64]),  # requests without a tenant have their own tag
        **await fill(store, "", ["0" * 64]),
        # One whose tenant id starts like a tag, and keys that are not cache keys at all.
        **await fill(store, tenant_key_prefix("a"), ["0" * 64]),
    }
    await store.set("plain", entry("plain"), None, None)
    await store.set(tenant_key_prefix("a")[:-1], entry("tag alone"), None, None)

    assert await store.clear_tenant("a") == 5
    assert await present(store, list(mine)) == []
    assert await present(store, list(others)) == list(others)
    assert await store.get("plain") is not None
    assert await store.get(tenant_key_prefix("a")[:-1]) is not None
    assert await store.count() == len(others) + 2
    assert await store.total_bytes() == (
        sum(others.values()) + entry("plain").nbytes + entry("tag alone").nbytes
    )
    assert store.evictions()["explicit"] == 5
    assert await store.clear_tenant("a") == 0
    assert await store.clear_tenant("nobody") == 0
    assert await store.clear_tenant(None) == 1
    assert await store.get(key("", "0" * 64)) is not None


async def test_writes_during_a_clear_are_kept_or_gone_whole(make_store: StoreFactory) -> None:
    store = await make_store()
    before = await fill(store, "a", [f"old-{i}" for i in range(150)])
    theirs = await fill(store, "b", [f"old-{i}" for i in range(20)])
    written: dict[str, int] = {}
    started = asyncio.Event()

    async def write() -> None:
        # Both tenants keep writing while the clear runs (the clear starts after the first
        # few writes, and the writes go on after it ends).
        for i in range(60):
            for tenant, into in (("a", written), ("b", theirs)):
                value = entry(f"{tenant}/new-{i}")
                await store.set(key(tenant, f"new-{i}"), value, None, None)
                into[key(tenant, f"new-{i}")] = value.nbytes
            if i == 3:
                started.set()
            await asyncio.sleep(0)  # a memory store's set never waits: let the clear in

    async def clear() -> int:
        await started.wait()
        return await store.clear_tenant("a")

    _, removed = await asyncio.gather(write(), clear())

    kept = []
    for k in [*before, *written]:
        got = await store.get(k)
        if got is not None:
            # Whole: the value it was written with, nothing torn or stale.
            assert got.response.content == "a/" + k.removeprefix(tenant_key_prefix("a"))
            kept.append(k)
    assert not set(kept) & set(before)  # everything written before the clear went
    assert removed + len(kept) == len(before) + len(written)
    assert await present(store, list(theirs)) == list(theirs)
    assert await store.count() == len(kept) + len(theirs)
    assert await store.total_bytes() == sum(written[k] for k in kept) + sum(theirs.values())


async def test_sqlite_clears_a_tenant_of_a_reopened_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    first = SQLiteStore(path)
    await fill(first, "a", ["1", "2"])
    await fill(first, "b", ["1"])
    await first.aclose()
    again = SQLiteStore(path)  # a restart: nothing but the file
    try:
        assert await again.clear_tenant("a") == 2
        assert await again.count() == 1
        assert await again.get(key("b", "1")) is not None
    finally:
        await again.aclose()


async def test_redis_clears_a_tenant_written_by_another_client(redis_server: Server) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    writer = RedisStore(redis_server.url, prefix=prefix)
    other = RedisStore(redis_server.url, prefix=prefix)  # another process, same cache
    try:
        await fill(writer, "a", ["1", "2"])
        await fill(writer, "b", ["1"])
        assert await other.clear_tenant("a") == 2
        assert await writer.get(key("a", "1")) is None
        assert await writer.count() == 1
    finally:
        await writer.clear()
        await writer.aclose()
        await other.aclose()
