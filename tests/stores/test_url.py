"""Store URLs: each scheme, its options, and clear errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

import vex_llm
from vex_llm.cache.stores import MemoryStore, RedisStore, SQLiteStore, open_store
from vex_llm.cache.stores.url import redact_url


def test_memory() -> None:
    store = open_store("memory://", max_entries=5, ttl=10.0)
    assert isinstance(store, MemoryStore)
    assert (store.max_entries, store.ttl) == (5, 10.0)
    assert isinstance(open_store("memory://"), MemoryStore)  # default bound
    assert vex_llm.open_store is open_store


async def test_sqlite_absolute_path_and_options(tmp_path: Path) -> None:
    store = open_store(
        f"sqlite:///{tmp_path}/with%20space.db?busy_timeout=2&synchronous=full",
        max_entries=7,
        max_bytes=1000,
        tti=3.0,
    )
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "with space.db"
    assert (store.max_entries, store.max_bytes, store.tti) == (7, 1000, 3.0)
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://relative.db", "absolute path"),
        ("sqlite:///", "names no file"),
        ("sqlite:////tmp/x.db?mode=ro", "unknown option 'mode'"),
        ("sqlite:////tmp/x.db?synchronous=off", "NORMAL or FULL"),
        ("sqlite:////tmp/x.db?busy_timeout=soon", "busy_timeout"),
        ("memory://somewhere", "no path"),
        ("mongodb://host/db", "unknown store scheme 'mongodb'"),
        ("/just/a/path.db", "no scheme"),
        ("", "no scheme"),
        ("redis://", "names no host"),
        ("redis://host:port/0", "malformed"),
        ("redis://host/zero", "database number"),
        ("redis://host/0?pool=9", "unknown option 'pool'"),
        ("redis://host/0?socket_timeout=-1", "socket_timeout"),
        ("redis://host/0?max_connections=0", "max_connections"),
        ("redis://host/0?pool_timeout=x", "pool_timeout"),
        ("sqlite:////tmp/x.db?bad_file=delete", "bad_file"),
    ],
)
def test_bad_urls_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


def test_not_a_string() -> None:
    with pytest.raises(TypeError):
        open_store(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["redis", "valkey", "rediss", "valkeys"])
async def test_redis_family(scheme: str) -> None:
    store = open_store(
        f"{scheme}://user:hunter2@cache.internal:6380/3?prefix=team-a:&socket_timeout=0.5",
        max_entries=9,
    )
    assert isinstance(store, RedisStore)
    assert store.prefix == "team-a:"
    assert store.max_entries == 9
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 3)
    assert (kwargs["password"], kwargs["socket_timeout"]) == ("hunter2", 0.5)
    tls = scheme in ("rediss", "valkeys")
    assert ("SSL" in store.client.connection_pool.connection_class.__name__) == tls
    assert "hunter2" not in repr(store)
    await store.aclose()


async def test_redis_pool_options() -> None:
    store = open_store("redis://cache.internal/0")
    assert isinstance(store, RedisStore)
    pool = store.client.connection_pool
    assert (pool.max_connections, pool.timeout) == (50, 1.0)  # blocking, bounded
    await store.aclose()
    store = open_store("redis://cache.internal/0?max_connections=7&pool_timeout=0.25")
    assert isinstance(store, RedisStore)
    pool = store.client.connection_pool
    assert (pool.max_connections, pool.timeout) == (7, 0.25)
    await store.aclose()


def test_passwords_never_show_in_errors() -> None:
    with pytest.raises(ValueError, match="bogus") as caught:
        open_store("redis://u:hunter2@host/0?bogus=1")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="malformed") as caught:
        open_store("redis://u:hunter2@host:notaport/0")
    assert "hunter2" not in str(caught.value)


def test_redact_url() -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert "pw" not in redact_url("redis://u:pw@h:bad/0")


def test_redact_url_hides_a_password_in_the_query() -> None:
    # redis-py reads ?password=... as the password, so it is as secret as the userinfo one.
    safe = redact_url("redis://h:1/0?password=hunter2&prefix=a")
    assert "hunter2" not in safe
    assert safe.startswith("redis://h:1/0?")
    assert "prefix=a" in safe
    both = redact_url("redis://u:pw1@h/0?password=pw2")
    assert "pw1" not in both
    assert "pw2" not in both


async def test_redis_store_repr_hides_a_query_password() -> None:
    from vex_llm.cache.stores.redis import RedisStore

    store = RedisStore("redis://127.0.0.1:1/0?password=hunter2")
    try:
        assert "hunter2" not in repr(store)
    finally:
        await store.aclose()
