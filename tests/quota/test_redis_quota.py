"""``RedisQuota`` against a real Redis: the scripts do ``gcra``'s arithmetic atomically, keep
one tenant's keys in one hash slot, and ``FailoverQuota`` counts in-process while Redis is
down (logged once, counted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.stores.servers import Server, binary
from vex_llm.cache.stores.breaker import StoreBreakerPolicy
from vex_llm.quota.failover import FailoverQuota
from vex_llm.quota.gcra import Rate
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits
from vex_llm.quota.redis import RedisQuota

PERIODS = Periods("2026-11-29", "2026-11", 3600.0, 86400.0)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Server]:
    path = binary("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed; run scripts/install-redis.sh")
    server = Server(path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(redis_server: Server) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    await connection.flushdb()
    try:
        yield connection
    finally:
        await connection.aclose()


async def test_the_scripts_do_the_gcra_arithmetic(client: aioredis.Redis) -> None:
    quota = RedisQuota(client, "t:")
    limits = Limits(requests=Rate(3, 60.0), tokens=Rate(1000, 60.0))
    standings = [await quota.admit("acme", limits, 400, PERIODS) for _ in range(4)]
    assert [s.requests.allowed for s in standings if s.requests] == [True, True, True, False]
    assert [s.requests.remaining for s in standings if s.requests] == [2, 1, 0, 0]
    # 400 + 400 reserved, the third did not fit, the fourth was refused before tokens.
    assert [s.reserved for s in standings] == [True, True, False, False]
    # (Redis's clock runs on: one token comes back every 60 ms, hence the slack below.)
    remaining = [s.tokens.remaining for s in standings if s.tokens]
    assert remaining == pytest.approx([600, 200, 200, 200], abs=5)
    refused = standings[3].requests
    assert refused is not None
    assert 15 < refused.retry_after <= 20.0
    # Settling: a refund of one reservation and a 50-token overrun of the other.
    settled = await quota.settle("acme", limits, -400, 0, PERIODS)
    assert settled.tokens is not None
    assert settled.tokens.remaining == pytest.approx(600, abs=5)
    settled = await quota.settle("acme", limits, 50, 0, PERIODS)
    assert settled.tokens is not None
    assert settled.tokens.remaining == pytest.approx(550, abs=5)
    peeked = await quota.peek("acme", limits, PERIODS)
    assert peeked.requests is not None
    assert peeked.tokens is not None
    assert peeked.requests.remaining == 0
    assert peeked.tokens.remaining == pytest.approx(550, abs=5)
    # One hash tag for all of a tenant's keys; they expire.
    keys = sorted(k.decode() for k in await client.keys("t:quota:*"))
    assert len(keys) == 2
    assert len({k.split("{")[1].split("}")[0] for k in keys}) == 1
    for key in keys:
        assert 0 < await client.pttl(key) <= 60_001


async def test_budgets_add_up_in_nanodollars_and_close_the_tokens(client: aioredis.Redis) -> None:
    quota = RedisQuota(client, "t:")
    limits = Limits(tokens=Rate(10_000, 60.0), daily=1_000_000_000)
    first = await quota.admit("acme", limits, 10, PERIODS)
    assert first.reserved
    spent = await quota.settle("acme", limits, 0, 999_999_999, PERIODS)
    assert (spent.daily_spent, spent.monthly_spent) == (999_999_999, 999_999_999)
    assert (await quota.admit("acme", limits, 10, PERIODS)).reserved
    await quota.settle("acme", limits, 0, 1, PERIODS)
    over = await quota.admit("acme", limits, 10, PERIODS)
    assert not over.reserved  # budget spent: the tokens are only peeked at
    assert over.daily_spent == 1_000_000_000
    day_key = next(k for k in await client.keys("t:quota:*day:*"))
    assert 3600 + 86400 - 5 < await client.ttl(day_key) <= 3600 + 86400
    assert (await quota.peek("other", limits, PERIODS)).daily_spent == 0


async def test_concurrent_admits_never_take_more_than_the_limit(client: aioredis.Redis) -> None:
    quotas = [RedisQuota(client, "t:"), RedisQuota(client, "t:")]  # two "processes"
    limits = Limits(requests=Rate(25, 60.0))
    standings = await asyncio.gather(
        *(quotas[i % 2].admit("acme", limits, 1, PERIODS) for i in range(60))
    )
    assert sum(1 for s in standings if s.requests and s.requests.allowed) == 25


async def test_a_dead_redis_fails_open_to_in_process_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = binary("redis-server")
    assert path is not None
    server = Server(path).start()
    connection = aioredis.Redis.from_url(server.url, socket_timeout=0.5)
    policy = StoreBreakerPolicy(failures=2, cooldown=60, timeout=0.5)
    quota = FailoverQuota(RedisQuota(connection, "t:"), policy=policy)
    limits = Limits(requests=Rate(2, 60.0))
    try:
        assert (await quota.admit("acme", limits, 1, PERIODS)).requests.allowed  # type: ignore[union-attr]
        server.stop()
        with caplog.at_level(logging.WARNING, logger="vex_llm.quota"):
            outcomes = [await quota.admit("acme", limits, 1, PERIODS) for _ in range(4)]
        # Each process alone now: the local count starts afresh (2 allowed, then refused).
        assert [s.requests.allowed for s in outcomes if s.requests] == [True, True, False, False]
        assert quota.errors == 4
        assert quota.circuit.state == "open"
        warnings = [r for r in caplog.records if r.name == "vex_llm.quota"]
        assert len(warnings) == 1  # once per outage, not per request
        assert "counting in this process" in warnings[0].getMessage()
    finally:
        await quota.aclose()
        await connection.aclose()
        server.stop()
