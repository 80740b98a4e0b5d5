"""Store fixtures: real Redis (required: `make test` installs it) and Valkey (when installed)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vex_llm.cache.stores import CacheStore, MemoryStore, RedisStore, SQLiteStore

from .servers import Cluster, Server, binary

StoreFactory = Callable[..., Awaitable[CacheStore]]


def _server(name: str, required: bool) -> Iterator[Server]:
    path = binary(name)
    if path is None:
        if required:
            pytest.fail(f"{name} is not installed; run scripts/install-redis.sh (make test does)")
        pytest.skip(f"{name} is not installed (optional)")
    server = Server(path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    yield from _server("redis-server", required=True)


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[Server]:
    yield from _server("valkey-server", required=False)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three redis-server nodes in cluster mode on loopback, created with redis-cli."""
    path = binary("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed; run scripts/install-redis.sh")
    cluster = Cluster(path, str(tmp_path_factory.mktemp("cluster")))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["memory", "sqlite", "redis", "valkey", "redis-cluster"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of fresh stores of one kind: ``await make_store(max_entries=..., ttl=...)``."""
    kind = request.param
    made: list[CacheStore] = []
    server: Server | None = None
    if kind in ("redis", "valkey"):
        server = request.getfixturevalue(f"{kind}_server")
    cluster: Cluster | None = None
    if kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")

    async def factory(**options: Any) -> CacheStore:
        store: CacheStore
        if kind == "memory":
            if options.get("max_entries") is None and options.get("max_bytes") is None:
                options["max_entries"] = 10_000
            store = MemoryStore(**options)
        elif kind == "sqlite":
            store = SQLiteStore(tmp_path / f"{len(made)}.db", **options)
        elif cluster is not None:
            store = RedisStore(cluster.url, prefix=f"t-{uuid.uuid4().hex[:8]}:", **options)
        else:
            assert server is not None
            store = RedisStore(server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:", **options)
        made.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for store in made:
        if isinstance(store, RedisStore):
            await store.clear()
        await store.aclose()
