"""The ``CacheStore`` protocol: where cache entries live, behind one async interface.

A store keeps ``CacheEntry`` values under string keys with a time-to-live and a time-to-idle
each, enforces its own size bounds, and counts evictions by cause. Stores that can answer
without I/O (memory) also implement ``SyncCacheStore`` so the cache's plain ``size()`` and
``clear()`` work without an event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from vex_llm.cache.entry import CacheEntry

__all__ = ["EVICTION_CAUSES", "CacheStore", "SyncCacheStore"]

#: The causes a store counts evictions under.
EVICTION_CAUSES = ("size", "expired", "explicit")


@runtime_checkable
class CacheStore(Protocol):
    """Async storage for cache entries."""

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key`` (refreshing its idle timer), or None."""
        ...

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        """Store ``entry``; False when it cannot be kept (larger than the whole store)."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if a live entry was removed."""
        ...

    async def clear(self) -> None:
        """Remove every entry of this store (and only of this store)."""
        ...

    async def count(self) -> int:
        """The exact number of live entries."""
        ...

    async def total_bytes(self) -> int:
        """The encoded size of all live entries."""
        ...

    def evictions(self) -> Mapping[str, int]:
        """Evictions so far, by cause (see ``EVICTION_CAUSES``)."""
        ...

    async def aclose(self) -> None:
        """Release connections or files. Idempotent."""
        ...


@runtime_checkable
class SyncCacheStore(CacheStore, Protocol):
    """A store that can also count and clear without I/O waits."""

    def count_now(self) -> int:
        """The exact number of live entries."""
        ...

    def bytes_now(self) -> int:
        """The encoded size of all live entries."""
        ...

    def clear_now(self) -> None:
        """Remove every entry."""
        ...
