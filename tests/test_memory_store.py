"""MemoryStore: the weight plan for two bounds, byte accounting, per-entry lifetimes."""

from __future__ import annotations

import asyncio

import pytest

from vex_llm import CacheEntry, LLMResponse, MemoryStore
from vex_llm.cache.stores.memory import POLICIES, EvictionPolicy, weight_plan


def entry(nbytes: int) -> CacheEntry:
    return CacheEntry(LLMResponse(content="x", model="m", cached=True), 0.0, nbytes)


def test_weight_plan_with_one_bound_is_exact() -> None:
    assert weight_plan(10, None) == (10, None)
    capacity, weight = weight_plan(None, 1000)
    assert capacity == 1000
    assert weight is not None
    assert weight(300) == 300


def test_weight_plan_with_both_bounds_charges_the_larger_share() -> None:
    capacity, weight = weight_plan(4, 1000)
    assert weight is not None
    unit = capacity // 4
    assert weight(10) == unit  # a small entry costs one entry's share
    assert weight(500) == 2 * unit  # half the bytes costs half the capacity
    # Both ceilings hold whenever the weights fit the capacity.
    assert 4 * weight(1) <= capacity
    assert weight(1000) == capacity


def test_weight_plan_stays_within_moka_limits_for_huge_bounds() -> None:
    capacity, weight = weight_plan(10**9, 10**12)
    assert weight is not None
    # A full-size entry still weighs the whole capacity without hitting moka's u32 clamp.
    assert weight(10**12) == capacity <= 2**32 - 1
    with pytest.raises(ValueError, match="max_entries or max_bytes"):
        weight_plan(None, None)


@pytest.mark.parametrize("policy", POLICIES)
async def test_bytes_follow_replacements_and_evictions(policy: EvictionPolicy) -> None:
    store = MemoryStore(max_entries=2, policy=policy)
    await store.set("a", entry(100), None, None)
    await store.set("a", entry(40), None, None)
    assert store.bytes_now() == 40
    await store.set("b", entry(10), None, None)
    await store.set("c", entry(1), None, None)
    assert store.count_now() == 2
    kept = {k: e.nbytes for k in "abc" if (e := store.get_now(k)) is not None}
    assert len(kept) == 2
    assert store.bytes_now() == sum(kept.values())
    if policy == "lru":
        assert kept == {"b": 10, "c": 1}
    assert store.evictions() == {"size": 1, "expired": 0, "explicit": 0}
    victim = next(iter(kept))
    assert await store.delete(victim)
    assert not await store.delete(victim)
    assert await store.total_bytes() == sum(kept.values()) - kept[victim]


async def test_per_entry_tti_is_refreshed_by_reads_and_counted_exactly() -> None:
    store = MemoryStore(max_entries=10, ttl=60, tti=60)
    await store.set("k", entry(5), 60, 0.15)
    for _ in range(3):
        await asyncio.sleep(0.08)
        assert await store.get("k") is not None
    assert store.count_now() == 1
    await asyncio.sleep(0.25)
    assert store.count_now() == 0
    assert store.bytes_now() == 0
    assert store.evictions()["expired"] == 1
