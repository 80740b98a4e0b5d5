"""Which limiter a proxy counts with: the one its cache store can share.

A Redis or Valkey store (standalone, Sentinel or Cluster; bare or behind its circuit
breaker) shares its client with a ``RedisQuota``, failing over to in-process counting while
it is down (``FailoverQuota``); any other store (memory://, SQLite) means ``LocalQuota``:
limits per process. Only SQLite is shared between processes among the others, and rate
limits are not kept in it: a write per request to a file every worker locks would cost
more than the limits are worth; use Redis to share limits across ``--workers``.
"""

from __future__ import annotations

from vex_llm.cache.stores.base import CacheStore
from vex_llm.cache.stores.breaker import BreakerStore, StoreBreakerPolicy
from vex_llm.quota.failover import FailoverQuota
from vex_llm.quota.local import LocalQuota
from vex_llm.quota.standing import QuotaBackend

__all__ = ["backend_for_store", "is_shared"]


def backend_for_store(store: CacheStore, policy: StoreBreakerPolicy | None = None) -> QuotaBackend:
    """The limiter to use beside ``store`` (``policy``: the breaker of a shared one)."""
    inner = store.store if isinstance(store, BreakerStore) else store
    try:
        from vex_llm.cache.stores.redis import RedisStore
    except ImportError:  # pragma: no cover - without the redis extra there is no RedisStore
        return LocalQuota()
    if isinstance(inner, RedisStore):
        from vex_llm.quota.redis import RedisQuota

        return FailoverQuota(RedisQuota(inner.client, inner.prefix), policy=policy)
    return LocalQuota()


def is_shared(backend: QuotaBackend) -> bool:
    """True when ``backend`` counts for every process sharing its store."""
    return isinstance(backend, FailoverQuota)
