"""``MemoryStore``: the in-process store, on moka (Rust) through ``moka-py``.

moka gives per-entry ttl/tti, LRU eviction by weight and an eviction listener with its cause;
this module adds the byte accounting, the mapping of two bounds (entries and bytes) onto one
weighted capacity, and the choice of eviction policy: W-TinyLFU with an adaptive window
(:mod:`~vex_llm.cache.stores.admission`, the default) or moka's own LRU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Literal

from moka_py import Moka

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import TENANT_TAG_LENGTH, tenant_key_prefix
from vex_llm.cache.stores.admission import WTinyLFU
from vex_llm.cache.stores.base import EVICTION_CAUSES, check_bounds

__all__ = ["POLICIES", "EvictionPolicy", "MemoryStore", "weight_plan"]

EvictionPolicy = Literal["w-tinylfu", "lru"]
#: The eviction policies a memory store offers; the first is the default.
#: ``benchmarks/hit_ratio.py`` compares them (README: "Hit ratio").
POLICIES: tuple[EvictionPolicy, ...] = ("w-tinylfu", "lru")

#: A cache key's head: the tenant tag and ``:`` (see ``key.tenant_tag``).
_HEAD = TENANT_TAG_LENGTH + 1

# moka clamps a weight to a u32; the unit must leave room for the largest entry we accept.
_MAX_WEIGHT = 2**32 - 1
_MAX_UNIT = 1 << 16


# With W-TinyLFU, moka's own bound is out of reach: the policy evicts.
_UNBOUNDED = 2**63
#: Hits buffered before the policy sees them (benchmarks/cache_hit.py: W-TinyLFU added
#: 0.47 µs to a repeated hit applied one by one, 0.09 µs batched; hit ratios unchanged).
_READ_BATCH = 256


def _entries_in(capacity: int) -> int:
    """The sketch's size for a byte-bounded store: entries of about 2 KiB each."""
    return max(64, min(1 << 20, capacity // 2048))


def weight_plan(
    max_entries: int | None, max_bytes: int | None
) -> tuple[int, Callable[[int], int] | None]:
    """Map the two bounds onto moka's one capacity: ``(capacity, weight_of_nbytes)``.

    With both bounds, an entry is charged the larger of its share of the entry budget and its
    share of the byte budget, so a full cache respects both ceilings. The price: a mix of
    small and large entries may be evicted a little before either bound alone is reached.
    With one bound, the plan is exact. ``weight_of_nbytes`` is None when every entry weighs 1.
    """
    if max_bytes is None:
        if max_entries is None:
            raise ValueError("a memory store needs max_entries or max_bytes")
        return max_entries, None
    if max_entries is None:
        return max_bytes, lambda nbytes: max(1, nbytes)
    unit = max(1, min(_MAX_UNIT, _MAX_WEIGHT // max_entries))
    capacity = max_entries * unit
    scale = capacity / max_bytes

    def weight(nbytes: int) -> int:
        return min(_MAX_WEIGHT, max(unit, math.ceil(nbytes * scale)))

    return capacity, weight


class MemoryStore:
    """In-process store with W-TinyLFU (or LRU) eviction, ttl/tti expiry and exact counts.

    ``policy`` picks what a full store evicts: ``"w-tinylfu"`` (default) keeps what is asked
    for often and adapts its recency window to the workload; ``"lru"`` evicts the least
    recently used. ``ttl``/``tti`` (seconds) are the store's own lifetimes and bound every
    entry. moka
    expires store-level lifetimes precisely, but reaps per-entry ones on a timer wheel with
    about a second's granularity; entries stored with a shorter per-request lifetime are
    therefore tracked here too, so that counts are exact the moment an entry dies.
    """

    def __init__(
        self,
        max_entries: int | None = 1000,
        max_bytes: int | None = None,
        *,
        ttl: float | None = None,
        tti: float | None = None,
        policy: EvictionPolicy = "w-tinylfu",
    ) -> None:
        ttl, tti = check_bounds(max_entries, max_bytes, ttl, tti)
        if policy not in POLICIES:
            raise ValueError(f"unknown eviction policy {policy!r}; use one of {POLICIES}")
        capacity, weight = weight_plan(max_entries, max_bytes)
        self.policy = policy
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.tti = tti
        self._bytes = 0
        self._evictions = dict.fromkeys(EVICTION_CAUSES, 0)
        # key -> [absolute deadline, tti, last access] (monotonic) for per-request lifetimes.
        self._short: dict[str, list[float]] = {}
        # Keys removed because their per-request lifetime ran out: their eviction counts as
        # expired, whenever moka delivers it.
        self._reaped: set[str] = set()
        self._weight = weight
        # Keys the policy is evicting: moka reports their removal as "explicit".
        self._evicting: set[str] = set()
        # Tenant key prefix -> the keys stored under it, for clear_tenant (moka cannot list its
        # keys). Kept in step by set() and the eviction listener; keys that do not look like
        # cache keys are not indexed.
        self._tenants: dict[str, set[str]] = {}
        self._policy: WTinyLFU | None = None
        # Hits not yet applied to the policy (W-TinyLFU only).
        self._reads: list[str] = []
        if policy == "lru":
            weigher = None if weight is None else (lambda _k, e: weight(e.nbytes))
            self._moka: Moka[str, CacheEntry] = Moka(
                capacity,
                ttl=ttl,
                tti=tti,
                eviction_listener=self._on_evict,
                policy="lru",
                weigher=weigher,
            )
        else:
            # moka only keeps and expires the entries; the policy decides what leaves.
            entries = max_entries if max_entries is not None else _entries_in(capacity)
            self._policy = WTinyLFU(capacity, entries)
            self._moka = Moka(
                _UNBOUNDED, ttl=ttl, tti=tti, eviction_listener=self._on_evict, policy="lru"
            )

    def _on_evict(self, key: str, entry: CacheEntry, cause: str) -> None:
        self._bytes -= entry.nbytes
        if cause == "replaced":
            return
        if self._policy is not None:
            self._policy.remove(key)
        if key in self._evicting:
            self._evicting.discard(key)
            cause = "size"
        elif key in self._reaped:
            self._reaped.discard(key)
            cause = "expired"
        self._short.pop(key, None)
        keys = self._tenants.get(key[:_HEAD])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._tenants[key[:_HEAD]]
        self._evictions[cause] = self._evictions.get(cause, 0) + 1

    def _reap_short_lived(self) -> None:
        now = time.monotonic()
        for key, (deadline, tti, last) in list(self._short.items()):
            if now >= deadline or now >= last + tti:
                self._reaped.add(key)
                self._short.pop(key, None)
                self._moka.remove(key)

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key``, or None."""
        return self.get_now(key)

    def get_now(self, key: str) -> CacheEntry | None:
        """:meth:`get` without a coroutine: the cache's hit path calls this directly."""
        entry = self._moka.get(key)
        if entry is None:
            if self._policy is not None:
                self._flush_reads()
                self._policy.on_miss(key)
            return None
        if self._policy is not None:
            # Hits reach the policy in batches (Caffeine buffers its reads too): a hit only
            # appends; the batch is applied before any write or miss, or when it is full.
            reads = self._reads
            reads.append(key)
            if len(reads) >= _READ_BATCH:
                self._flush_reads()
        if self._short:
            tracked = self._short.get(key)
            if tracked is not None:
                tracked[2] = time.monotonic()
        return entry

    def _flush_reads(self) -> None:
        if self._reads and self._policy is not None:
            reads, self._reads = self._reads, []
            self._policy.on_hits(reads)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        """Store ``entry``; False (and a ``size`` eviction) if it exceeds ``max_bytes``."""
        if self.max_bytes is not None and entry.nbytes > self.max_bytes:
            self._evictions["size"] += 1
            return False
        # moka buffers reads and writes and applies them in a maintenance pass. Running it
        # around each write (about 1 µs; writes follow an upstream call) records every earlier
        # read first, so LRU order is exact, and evicts at the write, as the other stores do.
        self._moka.run_pending_tasks()
        self._bytes += entry.nbytes
        self._reaped.discard(key)
        self._evicting.discard(key)
        if ttl == self.ttl and tti == self.tti:
            self._short.pop(key, None)
            self._moka.set(key, entry)
        else:
            now = time.monotonic()
            self._short[key] = [
                now + ttl if ttl is not None else math.inf,
                tti if tti is not None else math.inf,
                now,
            ]
            self._moka.set(key, entry, ttl=ttl, tti=tti)
        # After moka's set: replacing an expired entry reports its eviction (which forgets the
        # key) during the set itself.
        if key[_HEAD - 1 : _HEAD] == ":":
            self._tenants.setdefault(key[:_HEAD], set()).add(key)
        if self._policy is not None:
            self._flush_reads()
            weight = 1 if self._weight is None else self._weight(entry.nbytes)
            for victim in self._policy.insert(key, weight):
                self._evicting.add(victim)
                if self._moka.remove(victim) is None:
                    self._evicting.discard(victim)  # already gone (expired meanwhile)
        self._moka.run_pending_tasks()
        return True

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if a live entry was there."""
        return self._moka.remove(key) is not None

    async def clear(self) -> None:
        """Remove every entry."""
        self.clear_now()

    def clear_now(self) -> None:
        """Remove every entry, without awaiting."""
        self._moka.clear()
        self._moka.run_pending_tasks()
        self._short.clear()
        self._tenants.clear()
        if self._policy is not None:
            self._reads.clear()
            self._policy.clear()

    async def clear_tenant(self, tenant: str | None) -> int:
        """Remove ``tenant``'s entries; return how many live ones went."""
        return self.clear_tenant_now(tenant)

    def clear_tenant_now(self, tenant: str | None) -> int:
        """:meth:`clear_tenant` without awaiting: nothing else runs meanwhile, so every entry
        the tenant wrote before is gone and every later one is kept."""
        self._reap_short_lived()  # lifetimes already over are expirations, not removals
        keys = self._tenants.pop(tenant_key_prefix(tenant), None)
        if not keys:
            return 0
        self._flush_reads()
        explicit = self._evictions["explicit"]
        for key in keys:
            # moka reports each removal to _on_evict at once: bytes, policy and cause.
            self._moka.remove(key)
        self._moka.run_pending_tasks()
        return self._evictions["explicit"] - explicit

    async def count(self) -> int:
        """The exact number of live entries."""
        return self.count_now()

    def count_now(self) -> int:
        """The exact number of live entries (runs moka's pending evictions first)."""
        self._reap_short_lived()
        self._moka.run_pending_tasks()
        return self._moka.count()

    async def total_bytes(self) -> int:
        """The encoded size of all live entries."""
        return self.bytes_now()

    def bytes_now(self) -> int:
        """The encoded size of all live entries (after pending evictions)."""
        self._reap_short_lived()
        self._moka.run_pending_tasks()
        return self._bytes

    def evictions(self) -> Mapping[str, int]:
        """Evictions so far by cause."""
        return dict(self._evictions)

    async def aclose(self) -> None:
        """Nothing to release; entries stay until the store is dropped."""
