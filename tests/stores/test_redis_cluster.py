"""RedisStore on a real three-node Redis Cluster (sharded over hash tags) and through Sentinel.

The conformance suite runs against the cluster too (``make_store``'s ``redis-cluster``); these
tests cover what only a cluster or Sentinel has: entries spread over nodes, per-shard bounds,
many concurrent commands, URL parsing.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import tenant_key_prefix
from vex_llm.cache.stores import RedisStore, open_store
from vex_llm.cache.stores.redis_topology import parse_target
from vex_llm.models import LLMResponse

from .servers import Cluster, Server, binary, free_port, ping


def entry(text: str = "v") -> CacheEntry:
    return CacheEntry(LLMResponse(text, "m", cached=True), 1_700_000_000.0, 100)


def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}:"


def test_cluster_and_sentinel_urls_parse() -> None:
    target = parse_target("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002?prefix=x")
    assert target.topology == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (target.username, target.password, target.tls) == ("u", "p@ss", False)
    sentinel = parse_target("valkeys+sentinel://s1:26379,s2/mymaster/2")
    assert sentinel.topology == "sentinel"
    assert sentinel.nodes == (("s1", 26379), ("s2", 26379))
    assert (sentinel.service, sentinel.db, sentinel.tls) == ("mymaster", 2, True)
    for bad, problem in [
        ("redis+cluster://", "no host"),
        ("redis+cluster://h:99999", "bad port"),
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+sentinel://h:1", "no service"),
        ("redis+sentinel://h:1/svc/x", "db number"),
    ]:
        with pytest.raises(ValueError, match=problem):
            parse_target(bad)
    with pytest.raises(ValueError, match="bad redis store URL") as caught:
        open_store("redis+cluster://:secret@h:99999")
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="unknown option"):
        open_store("redis+cluster://127.0.0.1:1?bogus=1")


async def test_shards_spread_entries_over_the_nodes(redis_cluster: Cluster) -> None:
    store = open_store(f"{redis_cluster.url}?prefix={prefix()}&shards=16")
    assert isinstance(store, RedisStore)
    assert store.shards == 16
    try:
        for i in range(64):
            await store.set(f"k{i}", entry(f"v{i}"), None, None)
        assert await store.count() == 64
        assert await store.total_bytes() > 0
        got = await store.get("k7")
        assert got is not None
        assert got.response.content == "v7"
        holding = [n for n in redis_cluster.nodes if _dbsize(n.port) > 0]
        assert len(holding) >= 2  # one store, keys on several nodes
        assert await store.acquire_lease("k7", "me", 5)
        assert await store.lease_held("k7")
        assert not await store.acquire_lease("k7", "you", 5)
        assert await store.renew_lease("k7", "me", 5)
        await store.release_lease("k7", "me")
        assert not await store.lease_held("k7")
        assert await store.delete("k7")
        # One tenant's entries, spread over the shards too, and cleared from all of them.
        tenant = [tenant_key_prefix("a") + str(i) for i in range(32)]
        for key in tenant:
            await store.set(key, entry("a"), None, None)
        assert await store.clear_tenant("a") == 32
        assert await store.count() == 63
        await store.clear()
        assert await store.count() == 0
        assert store.evictions()["explicit"] == 64 + 32
    finally:
        await store.aclose()


async def test_sharded_bounds_hold_per_shard(redis_cluster: Cluster) -> None:
    store = RedisStore(redis_cluster.url, prefix=prefix(), shards=4, max_entries=32)
    try:
        for i in range(200):
            await store.set(f"k{i}", entry(), None, None)
        assert 24 <= await store.count() <= 32  # 8 per shard at most
        assert store.evictions()["size"] == 200 - await store.count()
    finally:
        await store.clear()
        await store.aclose()


async def test_many_concurrent_commands_wait_for_a_connection(redis_cluster: Cluster) -> None:
    # The cluster client refuses a connection past its per-node maximum (redis-py raises
    # MaxConnectionsError); the store queues commands beyond max_connections instead. The
    # first commands all find their scripts missing at once: loaded up front, not raced.
    store = RedisStore(f"{redis_cluster.url}?max_connections=8", prefix=prefix(), shards=4)
    try:
        await asyncio.gather(*(store.set(f"k{i}", entry(), None, None) for i in range(300)))
        hits = await asyncio.gather(*(store.get(f"k{i}") for i in range(300)))
        assert all(hit is not None for hit in hits)
    finally:
        await store.clear()
        await store.aclose()


def test_prefix_with_braces_and_shards_without_a_cluster_are_refused(
    redis_cluster: Cluster,
) -> None:
    with pytest.raises(ValueError, match="hash tags"):
        RedisStore(redis_cluster.url, prefix="a{b}:")
    with pytest.raises(ValueError, match="cluster only"):
        RedisStore("redis://127.0.0.1:1/0", shards=2)


def _dbsize(port: int) -> int:
    cli = binary("redis-cli")
    assert cli is not None
    out = subprocess.run([cli, "-p", str(port), "dbsize"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A primary and one Sentinel watching it as ``main``; yields the store URL."""
    path = binary("redis-server")
    assert path is not None
    primary = Server(path).start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor main 127.0.0.1 {primary.port} 1\n"
    )
    process = subprocess.Popen(
        [path, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(500):
            if ping(port):
                break
            assert process.poll() is None, "redis-sentinel did not start"
            subprocess.run(["sleep", "0.02"], check=True)
        yield f"redis+sentinel://127.0.0.1:{port}/main/0"
    finally:
        process.terminate()
        process.wait(10)
        primary.stop()


async def test_a_store_through_sentinel(sentinel: str) -> None:
    store = open_store(f"{sentinel}?prefix={prefix()}", max_entries=2)
    try:
        for key in "abc":
            await store.set(key, entry(key), None, None)
        assert await store.count() == 2
        got = await store.get("c")
        assert got is not None
        assert got.response.content == "c"
        assert store.evictions()["size"] == 1
        await store.set(tenant_key_prefix("t") + "k", entry("t"), None, None)
        assert await store.clear_tenant("t") == 1
        assert await store.count() == 1
    finally:
        await store.clear()
        await store.aclose()
