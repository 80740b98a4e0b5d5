"""W-TinyLFU decisions without I/O, and the memory store that follows them (ttl, tti, bytes)."""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict

import pytest

from vex_llm import CacheEntry, LLMResponse, MemoryStore
from vex_llm.cache.stores import open_store
from vex_llm.cache.stores.admission import FrequencySketch, WTinyLFU
from vex_llm.cache.stores.cold_start import ColdStart, split_by_demand
from vex_llm.cache.stores.recency_guard import RecencyGuard


def entry(nbytes: int = 10) -> CacheEntry:
    return CacheEntry(LLMResponse(content="x", model="m", cached=True), 0.0, nbytes)


def drive(policy: WTinyLFU, trace: list[str], held: set[str] | None = None) -> float:
    """Feed ``trace`` as a cache would (get, and set on a miss); return the hit ratio."""
    held = set() if held is None else held
    hits = 0
    for key in trace:
        if key in held:
            hits += 1
            policy.on_hit(key)
        else:
            policy.on_miss(key)
            held.add(key)
            held.difference_update(policy.insert(key, 1))
        assert policy.weight <= policy.capacity
        assert len(held) == len(policy)
    return hits / len(trace)


def test_sketch_counts_saturate_and_halve() -> None:
    sketch = FrequencySketch(100)
    assert sketch.width >= 1600
    for _ in range(20):
        sketch.increment("k")
    assert sketch.frequency("k") == 15
    sketch.halve()
    assert sketch.frequency("k") == 7
    assert sketch.frequency("never seen") <= 1  # a collision at most


def test_frequent_keys_survive_a_scan_once_frequency_has_shown_it_pays() -> None:
    policy, held = WTinyLFU(100), set[str]()
    hot = [f"hot{i}" for i in range(50)]
    # Cold, the policy is LRU: the first scan flushes the hot keys, which then come back.
    drive(policy, hot * 20 + [f"scan{i}" for i in range(1000)], held)
    assert sum(key in policy for key in hot) <= 5
    drive(policy, hot * 20 + [f"again{i}" for i in range(1000)], held)
    assert sum(key in policy for key in hot) >= 45  # LRU would keep none


def test_a_loop_larger_than_the_cache_still_hits() -> None:
    keys = [f"k{i}" for i in range(150)]
    assert drive(WTinyLFU(100), keys * 200) >= 0.5  # LRU: 0


def test_a_changing_working_set_hits_about_as_often_as_lru() -> None:
    rng = random.Random(7)
    trace = [f"p{phase}-{rng.randrange(50)}" for phase in range(40) for _ in range(500)]
    # LRU misses only the first use of each key: 2000 of 20000.
    assert drive(WTinyLFU(100), trace) >= 0.85


def test_weights_bound_the_total_and_removal_frees_it() -> None:
    policy = WTinyLFU(100, entries=10)
    evicted: list[str] = []
    for i in range(30):
        policy.on_miss(f"k{i}")
        evicted += policy.insert(f"k{i}", 10 + i % 7)
        assert policy.weight <= 100
    assert evicted
    assert all(key not in policy for key in evicted)
    some = next(key for key in (f"k{i}" for i in range(30)) if key in policy)
    before = policy.weight
    assert policy.remove(some)
    assert not policy.remove(some)
    assert policy.weight < before
    policy.clear()
    assert len(policy) == 0
    assert policy.weight == 0


def test_the_newest_entry_stays_even_when_it_outweighs_the_window() -> None:
    policy = WTinyLFU(1000)
    for key in "abc":
        policy.on_miss(key)
        assert policy.insert(key, 300) == []
    policy.on_miss("d")
    assert "d" not in policy.insert("d", 300)
    assert "d" in policy


async def test_store_follows_the_policy_and_counts_size_evictions() -> None:
    store = MemoryStore(max_entries=100)
    for i in range(500):
        key = f"k{i % 150}"
        if store.get_now(key) is None:
            await store.set(key, entry(), None, None)
    assert store.count_now() == 100
    assert store.bytes_now() == 100 * entry().nbytes
    assert store.evictions()["size"] > 0
    assert store.evictions()["explicit"] == 0


async def test_store_byte_bound_holds_with_mixed_sizes() -> None:
    store = MemoryStore(max_entries=None, max_bytes=10_000)
    rng = random.Random(3)
    for _ in range(400):
        key = f"k{rng.randrange(60)}"
        if store.get_now(key) is None:
            await store.set(key, entry(rng.randrange(100, 2000)), None, None)
        assert store.bytes_now() <= 10_000
    assert store.evictions()["size"] > 0


async def test_expired_and_deleted_entries_leave_the_policy() -> None:
    store = MemoryStore(max_entries=3)
    await store.set("kept", entry(), None, None)
    await store.set("gone", entry(), None, None)
    await store.set("short", entry(), 0.15, None)
    await store.set("idle", entry(), None, 0.15)  # full: the policy evicts one (cold: LRU)
    await asyncio.sleep(0.3)
    assert store.get_now("short") is None
    assert store.get_now("idle") is None
    assert store.count_now() <= 2
    for key in ("kept", "gone"):
        await store.delete(key)
    assert store.count_now() == 0
    for key in ("n1", "n2", "n3"):
        await store.set(key, entry(), None, None)
    # The expired and deleted keys no longer hold room: three new entries fit.
    assert store.count_now() == 3
    assert all(store.get_now(key) is not None for key in ("n1", "n2", "n3"))
    assert store.evictions()["expired"] >= 2


def test_policy_is_a_choice_with_w_tinylfu_by_default() -> None:
    assert MemoryStore().policy == "w-tinylfu"
    assert MemoryStore(policy="lru").policy == "lru"
    with pytest.raises(ValueError, match="unknown eviction policy"):
        MemoryStore(policy="fifo")  # type: ignore[arg-type]


def test_policy_from_a_store_url() -> None:
    store = open_store("memory://?policy=lru", max_entries=10)
    assert isinstance(store, MemoryStore)
    assert store.policy == "lru"
    assert isinstance(open_store("memory://"), MemoryStore)
    with pytest.raises(ValueError, match="policy"):
        open_store("memory://?policy=random")


async def test_store_hits_reach_the_policy_in_batches_and_keep_hot_keys() -> None:
    store = MemoryStore(max_entries=100)
    hot = [f"hot{i}" for i in range(50)]
    for key in hot:
        await store.set(key, entry(), None, None)
    for scan in ("first", "second"):
        for _ in range(20):  # 1000 hits, buffered and applied 64 at a time
            for key in hot:
                if store.get_now(key) is None:  # flushed by the first scan, while cold
                    await store.set(key, entry(), None, None)
        for i in range(1000):  # a scan of one-off keys, each a miss then a set
            key = f"{scan}{i}"
            assert store.get_now(key) is None
            await store.set(key, entry(), None, None)
    assert store.count_now() == 100
    assert sum(store.get_now(key) is not None for key in hot) >= 45


def test_a_batch_of_hits_counts_each_hit() -> None:
    one, batch = WTinyLFU(100), WTinyLFU(100)
    for policy in (one, batch):
        policy.on_miss("k")
        policy.insert("k", 1)
    for _ in range(5):
        one.on_hit("k")
    batch.on_hits(["k"] * 5)
    assert one.sketch.frequency("k") == batch.sketch.frequency("k") == 6


def lru_hit_ratio(capacity: int, trace: list[str]) -> float:
    held: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in trace:
        if key in held:
            hits += 1
            held.move_to_end(key)
        else:
            held[key] = None
            if len(held) > capacity:
                held.popitem(last=False)
    return hits / len(trace)


def test_a_working_set_larger_than_the_window_catches_up_with_lru() -> None:
    # Phases of 5000 requests over 400 fresh keys in a cache of 1000: LRU misses only each
    # key's first use. The guard grows the window at the first phase change; afterwards
    # the policy misses no more than LRU does.
    rng = random.Random(5)
    trace = [f"p{phase}-{rng.randrange(400)}" for phase in range(12) for _ in range(5000)]
    policy, held = WTinyLFU(1000, jitter=False), set[str]()
    # A loop larger than the cache first: evicted keys come back, the LRU start ends.
    drive(policy, [f"loop{i % 1500}" for i in range(6000)], held)
    assert policy.window_capacity == 10
    early = drive(policy, trace[:15_000], held)
    late = drive(policy, trace[15_000:], held)
    assert late >= lru_hit_ratio(1000, trace[15_000:]) - 0.002
    assert early > 0.8
    assert policy.window_capacity >= 400


def test_recency_guard_speaks_only_when_lru_leads() -> None:
    guard = RecencyGuard(100)
    assert guard.sampling == 1
    leads = [guard.access(f"k{i % 50}", hit=False) for i in range(400)]  # LRU hits, we miss
    assert any(lead is not None and lead > 0.5 for lead in leads)
    guard.clear()
    # The policy hits as often as LRU: periods end, with no lead.
    leads = [guard.access(f"k{i % 50}", hit=i >= 50) for i in range(400)]
    assert set(lead for lead in leads if lead is not None) == {0.0}


def test_recency_guard_samples_large_caches() -> None:
    guard = RecencyGuard(100_000)
    assert guard.sampling > 1
    share = sum(guard.sampled(f"key{i}") for i in range(20_000)) / 20_000
    assert abs(share - 1 / guard.sampling) < 0.5 / guard.sampling


def test_jitter_admits_a_warm_loser_now_and_then_and_only_when_asked() -> None:
    def admitted(jitter: bool) -> int:
        policy = WTinyLFU(100, jitter=jitter, rng=random.Random(1))
        for _ in range(6):
            policy.sketch.increment("warm")
        for _ in range(15):
            policy.sketch.increment("hot")
        return sum(policy._admit("warm", "hot") for _ in range(2000))

    assert admitted(jitter=False) == 0
    assert 2 <= admitted(jitter=True) <= 40  # about 2000 / 128


def test_the_climber_stays_put_on_a_flat_hit_ratio() -> None:
    policy = WTinyLFU(100, jitter=False)
    start = policy.window_capacity
    keys = [f"k{i}" for i in range(50)]  # everything fits: the hit ratio never moves
    drive(policy, keys * 200)
    assert policy.window_capacity == start


def test_large_entries_in_a_byte_bound_keep_the_policy_from_turning_into_lru() -> None:
    # Room for 100 entries of 8 KiB, sized as if for 400: the guard's shadow must shrink to
    # what the cache really holds, or it credits LRU with hits and grows the window to LRU.
    rng = random.Random(11)
    weights = [1 / rank**0.9 for rank in range(1, 5001)]
    trace = [f"z{i}" for i in rng.choices(range(5000), weights, k=30_000)]
    policy, held, hits = WTinyLFU(100 * 8192, entries=400, jitter=False), set[str](), 0
    for key in trace:
        if key in held:
            hits += 1
            policy.on_hit(key)
        else:
            policy.on_miss(key)
            held.add(key)
            held.difference_update(policy.insert(key, 8192))
    assert hits / len(trace) > lru_hit_ratio(100, trace) + 0.1
    assert policy.window_capacity < 50 * 8192


def test_a_cold_policy_is_lru_until_evicted_keys_come_back() -> None:
    # Phases over fresh working sets of half the cache: no evicted key ever comes back, so
    # the policy stays LRU and misses exactly what LRU misses, the first change included.
    rng = random.Random(2)
    phases = [f"p{phase}-{rng.randrange(500)}" for phase in range(8) for _ in range(5000)]
    policy, held = WTinyLFU(1000, jitter=False), set[str]()
    assert drive(policy, phases, held) == lru_hit_ratio(1000, phases)
    assert policy.window_capacity == 999
    # Then a long-tailed workload: evicted keys return, the window drops to its 1% floor.
    weights = [1 / rank**0.9 for rank in range(1, 20_001)]
    zipf = [f"z{i}" for i in rng.choices(range(20_000), weights, k=20_000)]
    assert drive(policy, zipf, held) > lru_hit_ratio(1000, zipf)
    assert policy.window_capacity < 300  # from its 1% floor, where the guard and climber take it


def test_cold_start_counts_returns_of_evicted_keys_and_keeps_popular_ones_past_a_scan() -> None:
    watch = ColdStart(keys=10, mask=0)
    for i in range(2):
        watch.evicted(f"hot{i}", frequency=9)
    for i in range(100):  # a scan's one-off keys do not push the popular ones out
        watch.evicted(f"scan{i}", frequency=1)
    watch.missed("never evicted")
    watch.missed("scan0")  # one-off keys: only the last 10 are remembered
    watch.missed("scan99")
    watch.missed("hot0")
    watch.missed("hot0")  # counted once
    assert watch.returns == 2
    assert [watch.missed(f"hot{i}") for i in (1, 2)] == [False, False]
    assert watch.returns == 3  # hot2 was never evicted
    watch.evicted("hot2", frequency=9)
    assert watch.missed("hot2") is (ColdStart.RETURNS <= 4)
    sampled = ColdStart(keys=10, mask=1)
    for i in range(50):
        sampled.evicted(f"k{i}", frequency=9)
        sampled.missed(f"k{i}")
    assert 10 <= sampled.returns <= 40  # about half the keys are in the sample


def test_split_by_demand_protects_the_most_recent_keys_asked_for_again() -> None:
    counts = {"a": 5, "b": 1, "c": 3, "d": 2, "e": 1}
    entries = [(key, 1) for key in "abcde"]  # oldest first
    protected, probation = split_by_demand(entries, counts.__getitem__, room=2)
    assert protected == [("c", 1), ("d", 1)]  # "a" was asked for again too, but is older
    assert probation == [("a", 1), ("b", 1), ("e", 1)]
