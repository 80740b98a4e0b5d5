"""Rate limits on Redis Cluster: the limiter rides the store's cluster client, and each
tenant's keys (one hash tag) let one script count all of them atomically."""

from __future__ import annotations

import asyncio
import uuid

from tests.stores.servers import Cluster
from vex_llm.cache.stores.breaker import StoreBreakerPolicy
from vex_llm.cache.stores.redis import RedisStore
from vex_llm.quota import backend_for_store, is_shared
from vex_llm.quota.gcra import Rate
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits

PERIODS = Periods("2026-11-29", "2026-11", 60.0, 60.0)
#: Sixty concurrent scripts on a loaded machine may take longer than the default 1 s bound;
#: this test is about counting, not about failing over.
PATIENT = StoreBreakerPolicy(timeout=20.0)


async def test_limits_on_a_cluster_count_once_per_tenant(redis_cluster: Cluster) -> None:
    prefix = f"q-{uuid.uuid4().hex[:8]}:"
    stores = [RedisStore(redis_cluster.url, prefix=prefix) for _ in "ab"]  # two "processes"
    try:
        backends = [backend_for_store(s, PATIENT) for s in stores]
        assert all(is_shared(b) for b in backends)
        limits = Limits(requests=Rate(7, 60.0), tokens=Rate(1000, 60.0), daily=10**9)
        tenants = [f"tenant-{i}" for i in range(6)]  # spread over slots, hence nodes
        standings = await asyncio.gather(
            *(
                backends[i % 2].admit(tenant, limits, 10, PERIODS)
                for tenant in tenants
                for i in range(10)
            )
        )
        allowed = [s.requests.allowed for s in standings if s.requests is not None]
        assert sum(allowed) == 7 * len(tenants)
        settled = await backends[0].settle("tenant-0", limits, -70, 5, PERIODS)
        assert settled.daily_spent == 5
        assert getattr(backends[0], "errors", None) == 0
    finally:
        for store in stores:
            await store.aclose()
