"""The response cache: key, config, single-flight, stats, stores and ``CachedProvider``."""

from vex_llm.cache.config import LLMCacheConfig, effective_expiry
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import KEY_VERSION, cache_key
from vex_llm.cache.lease import LeasePolicy
from vex_llm.cache.provider import CachedProvider, CacheOutcome, CacheResult
from vex_llm.cache.stats import CacheStats
from vex_llm.cache.stores import (
    CacheStore,
    LeaseStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    StoreError,
    SyncCacheStore,
    open_store,
)
from vex_llm.cache.streaming import CachedStream

__all__ = [
    "KEY_VERSION",
    "CacheEntry",
    "CacheOutcome",
    "CacheResult",
    "CacheStats",
    "CacheStore",
    "CachedProvider",
    "CachedStream",
    "LLMCacheConfig",
    "LeasePolicy",
    "LeaseStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "SyncCacheStore",
    "cache_key",
    "effective_expiry",
    "open_store",
]
