"""Cache stores behind the ``CacheStore`` protocol; memory is the embedded default.

``SQLiteStore`` persists to a file shared by processes on one machine; ``RedisStore`` shares a
cache across machines (needs the ``[redis]`` extra, imported only when one is made).
``open_store(url)`` picks one from a URL.
"""

from vex_llm.cache.stores.base import (
    EVICTION_CAUSES,
    STORE_FAILURES,
    CacheStore,
    LeaseStore,
    StoreError,
    SyncCacheStore,
)
from vex_llm.cache.stores.memory import MemoryStore
from vex_llm.cache.stores.redis import RedisStore
from vex_llm.cache.stores.sqlite import SQLiteStore
from vex_llm.cache.stores.url import open_store

__all__ = [
    "EVICTION_CAUSES",
    "STORE_FAILURES",
    "CacheStore",
    "LeaseStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "SyncCacheStore",
    "open_store",
]
