"""Cache stores behind the ``CacheStore`` protocol; memory is the embedded default.

``SQLiteStore`` persists to a file shared by processes on one machine; ``RedisStore`` shares a
cache across machines (needs the ``[redis]`` extra, imported only when one is made).
``open_store(url)`` picks one from a URL; ``guard_store(store)`` puts a circuit breaker in
front of one, so a failing or hung store is skipped instead of waited for.
"""

from vex_llm.cache.stores.base import (
    EVICTION_CAUSES,
    STORE_FAILURES,
    AtomicLeaseStore,
    CacheStore,
    CacheStoreWithSyncOps,
    LeaseStore,
    StoreError,
)
from vex_llm.cache.stores.breaker import BreakerStore, StoreBreakerPolicy, guard_store
from vex_llm.cache.stores.memory import MemoryStore
from vex_llm.cache.stores.redis import RedisStore
from vex_llm.cache.stores.sqlite import SQLiteStore
from vex_llm.cache.stores.url import open_store

__all__ = [
    "EVICTION_CAUSES",
    "STORE_FAILURES",
    "AtomicLeaseStore",
    "BreakerStore",
    "CacheStore",
    "CacheStoreWithSyncOps",
    "LeaseStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoreBreakerPolicy",
    "StoreError",
    "guard_store",
    "open_store",
]


def __getattr__(name: str) -> object:
    # Deprecated names, resolved (with a DeprecationWarning) where they are defined.
    if name == "SyncCacheStore":
        from vex_llm.cache.stores import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
