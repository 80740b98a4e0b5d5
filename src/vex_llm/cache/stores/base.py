"""The ``CacheStore`` protocol: where cache entries live, behind one async interface.

A store keeps ``CacheEntry`` values under string keys with a time-to-live and a time-to-idle
each, enforces its own size bounds, and counts evictions by cause. Every store is async;
stores that can also count and clear synchronously (memory, SQLite) implement
``CacheStoreWithSyncOps`` as well, so the cache's plain ``count()``, ``stats()`` and ``clear()``
work without an event loop. (It was called ``SyncCacheStore``, which read as "not async"; the
old name still works, with a ``DeprecationWarning``.)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from vex_llm.cache.entry import CacheEntry
from vex_llm.validation import positive_int, seconds

__all__ = [
    "EVICTION_CAUSES",
    "STORE_FAILURES",
    "AtomicLeaseStore",
    "CacheStore",
    "CacheStoreWithSyncOps",
    "LeaseStore",
    "StoreError",
    "check_bounds",
]

#: The causes a store counts evictions under.
EVICTION_CAUSES = ("size", "expired", "explicit")


class StoreError(Exception):
    """A store could not do its job (database locked or corrupt, server unreachable, ...).

    Stores wrap their backend's errors (``sqlite3.Error``, ``redis.RedisError``) in this, so
    the cache can tell "the store is down, go upstream" from a programming error, which must
    surface. Messages never contain credentials.
    """


#: What the cache survives by going upstream: a store's own failure, or an OS-level one
#: (disk full, connection refused, timeouts are all ``OSError``). Anything else is a bug.
STORE_FAILURES: tuple[type[BaseException], ...] = (StoreError, OSError)


def check_bounds(
    max_entries: object, max_bytes: object, ttl: object, tti: object
) -> tuple[float | None, float | None]:
    """Refuse bad store bounds at construction; return ``(ttl, tti)`` in seconds.

    Sizes are positive ints or None; lifetimes positive, finite seconds (or ``timedelta``)
    or None. A zero or negative one would otherwise keep nothing, silently.
    """
    positive_int("max_entries", max_entries, optional=True)
    positive_int("max_bytes", max_bytes, optional=True)
    return seconds("ttl", ttl), seconds("tti", tti)


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

    async def clear_tenant(self, tenant: str | None) -> int:
        """Remove the entries of one tenant (None: of requests without one); return how many
        live entries went. The store finds them by key: a tenant's keys start with its
        ``key.tenant_key_prefix`` (keys that do not look like cache keys are left alone).

        Each entry is removed whole or kept whole: one the tenant writes while the clear runs
        is either gone afterwards or fully there (value, size and bookkeeping). Other
        tenants' entries are untouched. Leases in progress are kept (they expire on their
        own). Removals count as ``explicit`` evictions.
        """
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
class CacheStoreWithSyncOps(CacheStore, Protocol):
    """An async ``CacheStore`` that can also count and clear synchronously (no event loop)."""

    def count_now(self) -> int:
        """The exact number of live entries."""
        ...

    def bytes_now(self) -> int:
        """The encoded size of all live entries."""
        ...

    def clear_now(self) -> None:
        """Remove every entry."""
        ...


@runtime_checkable
class LeaseStore(Protocol):
    """A store that can also arbitrate who computes a missing entry, across processes.

    A lease is a short-lived claim on a key, held by ``owner`` (a random token per cache).
    It expires on its own ``ttl`` seconds after it was taken or last renewed, so a holder
    that dies blocks the others only briefly.
    """

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease on ``key`` if nobody holds a live one; True when taken."""
        ...

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lease to ``ttl`` from now; False if it was lost meanwhile."""
        ...

    async def release_lease(self, key: str, owner: str) -> None:
        """Give the lease back, if ``owner`` still holds it."""
        ...

    async def lease_held(self, key: str) -> bool:
        """True while anybody holds a live lease on ``key``."""
        ...


@runtime_checkable
class AtomicLeaseStore(LeaseStore, Protocol):
    """A ``LeaseStore`` that folds the lease into the read and the write, so a miss costs two
    store operations: one that reads or takes the lease, one that writes and releases it.

    Both are atomic on the store (one script, one transaction): no other process can store the
    answer between a read that found nothing and the lease it then took.
    """

    async def get_or_lease(
        self, key: str, owner: str, ttl: float
    ) -> tuple[CacheEntry | None, bool]:
        """The live entry for ``key`` as :meth:`CacheStore.get` returns it (``(entry, False)``);
        if there is none, try to take the lease: ``(None, True)`` when taken, ``(None, False)``
        when somebody holds it."""
        ...

    async def set_and_release(
        self,
        key: str,
        entry: CacheEntry,
        ttl: float | None,
        tti: float | None,
        owner: str,
    ) -> bool:
        """:meth:`CacheStore.set`, then give ``owner``'s lease on ``key`` back."""
        ...


def __getattr__(name: str) -> Any:
    if name == "SyncCacheStore":
        warnings.warn(
            "SyncCacheStore is now CacheStoreWithSyncOps (it is an async store with sync extras)",
            DeprecationWarning,
            stacklevel=2,
        )
        return CacheStoreWithSyncOps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
