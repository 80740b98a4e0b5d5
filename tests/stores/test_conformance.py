"""One suite, every store: memory, SQLite, Redis and Valkey must behave the same.

Lifetimes are real (a store's clock is its own: moka's, the wall clock, the Redis server's),
so the expiry tests sleep a few hundred milliseconds; margins are wide enough for a loaded
two-core machine.
"""

from __future__ import annotations

import asyncio

from vex_llm.cache.entry import CacheEntry, encode_entry
from vex_llm.cache.stores import CacheStoreWithSyncOps
from vex_llm.models import Chunk, LLMResponse, Usage

from .conftest import StoreFactory


def entry(content: str, *, chunks: tuple[Chunk, ...] | None = None) -> CacheEntry:
    """An entry whose ``nbytes`` is its encoded size, as ``CachedProvider`` stores it."""
    raw = CacheEntry(
        LLMResponse(content, "m", Usage(3, 4), latency_ms=12.5, cached=True), 1_700_000_000.0
    )
    raw = CacheEntry(raw.response, raw.stored_at, 0, chunks)
    return CacheEntry(raw.response, raw.stored_at, len(encode_entry(raw)), chunks)


async def test_get_set_delete(make_store: StoreFactory) -> None:
    store = await make_store()
    assert await store.get("k") is None
    assert await store.set("k", entry("v"), None, None) is True
    got = await store.get("k")
    assert got is not None
    assert got.response == entry("v").response
    assert got.stored_at == 1_700_000_000.0
    assert got.nbytes == entry("v").nbytes
    assert await store.delete("k") is True
    assert await store.delete("k") is False
    assert await store.get("k") is None
    assert store.evictions()["explicit"] == 1


async def test_overwrite_replaces_and_recounts(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set("k", entry("short"), None, None)
    await store.set("k", entry("a longer value"), None, None)
    got = await store.get("k")
    assert got is not None
    assert got.response.content == "a longer value"
    assert await store.count() == 1
    assert await store.total_bytes() == entry("a longer value").nbytes
    assert store.evictions()["size"] == 0


async def test_clear_and_counts(make_store: StoreFactory) -> None:
    store = await make_store()
    values = {f"k{i}": entry(f"value {i}") for i in range(5)}
    for key, value in values.items():
        await store.set(key, value, None, None)
    assert await store.count() == 5
    assert await store.total_bytes() == sum(v.nbytes for v in values.values())
    await store.clear()
    assert await store.count() == 0
    assert await store.total_bytes() == 0
    assert all([await store.get(k) is None for k in values])
    assert store.evictions()["explicit"] == 5


async def test_sync_counts_match_async_ones(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set("a", entry("x"), None, None)
    if isinstance(store, CacheStoreWithSyncOps):
        assert store.count_now() == await store.count() == 1
        assert store.bytes_now() == await store.total_bytes()
        store.clear_now()
        assert await store.count() == 0
    else:
        assert make_store.kind in ("redis", "valkey", "redis-cluster")  # type: ignore[attr-defined]


async def test_ttl_expires_entries(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set("short", entry("s"), 0.3, None)
    await store.set("long", entry("l"), 30.0, None)
    assert await store.get("short") is not None
    await asyncio.sleep(0.45)
    assert await store.get("short") is None
    assert await store.get("long") is not None
    assert await store.count() == 1
    assert await store.total_bytes() == entry("l").nbytes
    assert store.evictions()["expired"] == 1


async def test_store_ttl_bounds_every_entry(make_store: StoreFactory) -> None:
    store = await make_store(ttl=0.3)
    await store.set("k", entry("v"), None, None)
    await store.set("k2", entry("v"), 60.0, None)  # may not outlive the store's ttl
    await asyncio.sleep(0.45)
    assert await store.get("k") is None
    assert await store.get("k2") is None
    assert await store.count() == 0


async def test_tti_refreshes_on_read(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set("k", entry("v"), None, 0.5)
    for _ in range(3):  # 0.75 s in all, but never 0.5 s idle
        await asyncio.sleep(0.25)
        assert await store.get("k") is not None
    await asyncio.sleep(0.7)
    assert await store.get("k") is None
    assert await store.count() == 0


async def test_idle_refresh_never_passes_the_ttl(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.set("k", entry("v"), 0.6, 0.5)
    await asyncio.sleep(0.3)
    assert await store.get("k") is not None  # idle would now allow until 0.8; ttl says 0.6
    await asyncio.sleep(0.4)
    assert await store.get("k") is None


async def test_max_entries_evicts_one_unread_entry(make_store: StoreFactory) -> None:
    # Which unread entry goes is the policy's choice (LRU: b; W-TinyLFU may turn the newest
    # candidate away): tests/test_memory_store.py checks the memory policies' own orders.
    store = await make_store(max_entries=3)
    for key in "abc":
        await store.set(key, entry(key), None, None)
    assert await store.get("a") is not None  # a is now the most recently used
    await store.set("d", entry("d"), None, None)
    assert [await store.get(k) is not None for k in "ad"] == [True, True]
    assert [await store.get(k) is None for k in "bc"].count(True) == 1
    assert await store.count() == 3
    assert store.evictions()["size"] == 1


async def test_max_bytes_bounds_the_total(make_store: StoreFactory) -> None:
    one = entry("x" * 1000).nbytes
    store = await make_store(max_bytes=3 * one + one // 2)
    for key in "abcd":
        await store.set(key, entry("x" * 1000), None, None)
    assert await store.count() == 3
    assert await store.total_bytes() <= 3 * one + one // 2
    assert await store.get("d") is not None  # the newest stays; one of the others went
    assert store.evictions()["size"] == 1
    # An entry larger than the whole store is refused, not stored.
    assert await store.set("huge", entry("y" * (4 * one)), None, None) is False
    assert await store.get("huge") is None
    assert store.evictions()["size"] == 2


async def test_unicode_and_chunks_round_trip(make_store: StoreFactory) -> None:
    store = await make_store()
    text = "héllo 世界 🚀 — \u0000 null, \u2028 separator, 'quotes' \"and\" \\ back"
    chunks = (Chunk("héllo "), Chunk("世界 🚀", finish_reason="stop", usage=Usage(1, 2)))
    await store.set("ü-key-🔑", entry(text, chunks=chunks), None, None)
    got = await store.get("ü-key-🔑")
    assert got is not None
    assert got.response.content == text
    assert got.chunks == chunks


async def test_one_megabyte_value(make_store: StoreFactory) -> None:
    store = await make_store()
    big = "abcdefghij" * 100_000 + "é"
    value = entry(big)
    assert await store.set("big", value, None, None)
    got = await store.get("big")
    assert got is not None
    assert got.response.content == big
    assert await store.total_bytes() == value.nbytes > 1_000_000


async def test_keys_do_not_collide(make_store: StoreFactory) -> None:
    store = await make_store()
    keys = ["k", "k:", "e:k", "lru", "sizes", "bytes", "seq", "l:k", "K", " k"]
    for key in keys:
        await store.set(key, entry(f"value of {key!r}"), None, None)
    for key in keys:
        got = await store.get(key)
        assert got is not None
        assert got.response.content == f"value of {key!r}"
    assert await store.count() == len(keys)
