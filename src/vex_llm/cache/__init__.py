"""The response cache: key, config, single-flight, stats, stores and ``CachedProvider``."""

from vex_llm.cache.config import LLMCacheConfig, effective_expiry
from vex_llm.cache.embeddings import EmbeddingOutcome, EmbeddingResult
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import KEY_VERSION, cache_key
from vex_llm.cache.lease import LeasePolicy
from vex_llm.cache.outcome import CacheOutcome, CacheResult
from vex_llm.cache.provider import CachedProvider
from vex_llm.cache.stats import CacheStats
from vex_llm.cache.stores import (
    CacheStore,
    CacheStoreWithSyncOps,
    LeaseStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    StoreError,
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
    "CacheStoreWithSyncOps",
    "CachedProvider",
    "CachedStream",
    "EmbeddingOutcome",
    "EmbeddingResult",
    "LLMCacheConfig",
    "LeasePolicy",
    "LeaseStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "cache_key",
    "effective_expiry",
    "open_store",
]


def __getattr__(name: str) -> object:
    # Deprecated names, resolved (with a DeprecationWarning) where they are defined.
    if name == "SyncCacheStore":
        from vex_llm.cache.stores import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
