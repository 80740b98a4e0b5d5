"""Cache stores behind the ``CacheStore`` protocol; memory is the embedded default."""

from vex_llm.cache.stores.base import EVICTION_CAUSES, CacheStore, SyncCacheStore
from vex_llm.cache.stores.memory import MemoryStore

__all__ = ["EVICTION_CAUSES", "CacheStore", "MemoryStore", "SyncCacheStore"]
