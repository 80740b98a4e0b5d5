"""``RedisStore``: a cache shared by every process and machine that reaches one Redis or Valkey.

Built on ``redis.asyncio`` (the optional ``[redis]`` extra, imported lazily). Each operation is
one Lua script (see ``redis_scripts``), so reads refresh idle time without ever passing the
absolute deadline, and the store enforces ``max_entries``/``max_bytes`` itself, evicting least
recently used first, atomically across all clients sharing the prefix. Every key lives under
``prefix``; ``clear()`` removes only those (never ``FLUSHDB``). The server's ``maxmemory``
policy remains the server's business: configure it so Redis itself never evicts more than
you expect. Redis errors are raised as ``StoreError`` (the cache then fails open).

Redis Cluster (``redis+cluster://``) and Sentinel (``redis+sentinel://``) URLs work too (see
``redis_topology``). On a cluster every key of an operation carries one hash tag, so each
script runs in one slot: with ``shards=1`` (the default) all of a store's keys share one
slot (exact bounds, one node holds the cache); ``shards=N`` spreads the entries over N
tags (N slots, spread over the nodes), each shard bounded by 1/N of ``max_entries`` and
``max_bytes`` (so the bounds hold per shard: the total may exceed them by what one
shard's largest entry overshoots).

Redis is async only: this store does not implement ``CacheStoreWithSyncOps`` (use ``astats``,
``asize`` and ``aclear`` on the cache).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from vex_llm.cache.config import shorter_lifetime
from vex_llm.cache.entry import CacheEntry, decode_entry, encode_entry
from vex_llm.cache.key import tenant_key_prefix
from vex_llm.cache.stores import redis_scripts as lua
from vex_llm.cache.stores.base import EVICTION_CAUSES, StoreError, check_bounds
from vex_llm.cache.stores.redis_topology import connect, is_topology_url, parse_target
from vex_llm.redaction import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore", "glob_escape", "to_millis"]

_BATCH = 500
#: Defaults for a client the store makes itself: fail fast (the cache fails open, a slow
#: store is worse than none) and retry once, so a server restart costs no request.
_CONNECT_TIMEOUT = 1.0
_SOCKET_TIMEOUT = 2.0
#: Connections per store; more concurrent commands queue for one (each takes well under a
#: millisecond), for at most _POOL_TIMEOUT seconds.
_MAX_CONNECTIONS = 50
_POOL_TIMEOUT = 1.0


def to_millis(seconds: float | None) -> str:
    """A lifetime as the scripts take it: whole milliseconds (at least 1), '' for none."""
    return "" if seconds is None else str(max(1, math.ceil(seconds * 1000)))


def glob_escape(text: str) -> str:
    """``text`` escaped for a ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclasses.dataclass(frozen=True)
class _Shard:
    """The key names of one shard: its entries, leases and bookkeeping (lru, sizes, bytes, seq)."""

    entry_prefix: str
    lease_prefix: str
    meta: tuple[str, str, str, str]
    max_entries: int | None
    max_bytes: int | None

    @classmethod
    def named(cls, base: str, max_entries: int | None, max_bytes: int | None) -> _Shard:
        meta = (base + "lru", base + "sizes", base + "bytes", base + "seq")
        return cls(base + "e:", base + "l:", meta, max_entries, max_bytes)


def _share(bound: int | None, shards: int) -> int | None:
    return None if bound is None else max(1, math.ceil(bound / shards))


def _topology_options(url: str) -> dict[str, Any]:
    """Connection options from a cluster/sentinel URL's query (the pool ones are the store's)."""
    options: dict[str, Any] = {}
    for name, value in parse_qsl(url.partition("?")[2]):
        if name in ("socket_timeout", "socket_connect_timeout", "timeout"):
            options[name] = float(value)
        elif name == "max_connections":
            options[name] = int(value)
        else:
            raise ValueError(f"unknown option {name!r}")
    return options


async def _batches(names: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """``names`` in lists of up to ``_BATCH``."""
    batch: list[bytes] = []
    async for name in names:
        batch.append(name)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - exercised without the extra installed
        raise ImportError(
            "RedisStore needs the 'redis' extra: pip install 'vex-llm[redis]'"
        ) from exc
    return aioredis


class RedisStore:
    """Entries in Redis/Valkey under ``prefix``, from a ``redis.asyncio`` client or a URL.

    A store made from a URL owns its client (closed by :meth:`aclose`); a client passed in is
    the caller's. ``max_entries``/``max_bytes`` bound the entries under ``prefix`` (None:
    unbounded); ``ttl``/``tti`` (seconds) bound every entry's lifetimes. Eviction counts are
    this process's own.
    """

    def __init__(
        self,
        client_or_url: Redis | str,
        *,
        prefix: str = "vex-llm:",
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl: float | None = None,
        tti: float | None = None,
        shards: int = 1,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 16384:
            raise ValueError("shards must be an int from 1 to 16384")
        ttl, tti = check_bounds(max_entries, max_bytes, ttl, tti)
        aioredis = _import_redis()
        from redis.asyncio.cluster import RedisCluster

        # Past this many commands in flight, more wait here: the cluster's and Sentinel's
        # pools refuse the extra connection instead of waiting for one (None: the pool waits).
        self._limit: asyncio.Semaphore | None = None
        self._helpers: list[Any] = []
        if isinstance(client_or_url, str) and is_topology_url(client_or_url):
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._where = redact_url(client_or_url)
            try:
                target = parse_target(client_or_url)
                options = _topology_options(client_or_url)
            except ValueError as exc:
                raise ValueError(f"bad redis URL {self._where}: {exc}") from None
            limit = options.pop("max_connections", _MAX_CONNECTIONS)
            options.pop("timeout", None)
            options.setdefault("socket_connect_timeout", _CONNECT_TIMEOUT)
            options.setdefault("socket_timeout", _SOCKET_TIMEOUT)
            self._client, self._helpers = connect(target, retry=Retry(NoBackoff(), 1), **options)
            self._limit = asyncio.Semaphore(limit)
            self._owns_client = True
        elif isinstance(client_or_url, str):
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._where = redact_url(client_or_url)
            try:
                # A blocking pool: past max_connections a command waits (up to ``timeout``)
                # for a free connection; redis-py's default pool fails it at once instead
                # (MaxConnectionsError at 200 concurrent requests). URL options override.
                pool = aioredis.BlockingConnectionPool.from_url(
                    client_or_url,
                    max_connections=_MAX_CONNECTIONS,
                    timeout=_POOL_TIMEOUT,
                    socket_connect_timeout=_CONNECT_TIMEOUT,
                    socket_timeout=_SOCKET_TIMEOUT,
                    retry=Retry(NoBackoff(), 1),
                )
                self._client = aioredis.Redis.from_pool(pool)
            except ValueError as exc:
                raise ValueError(f"bad redis URL {self._where}: {exc}") from None
            self._owns_client = True
        elif isinstance(client_or_url, aioredis.Redis | RedisCluster):
            self._client = client_or_url
            self._where = "redis client"
            self._owns_client = False
        else:
            raise TypeError(
                "client_or_url must be a redis.asyncio.Redis or a redis:// URL, "
                f"not {type(client_or_url).__name__}"
            )
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.tti = tti
        cluster = isinstance(self._client, RedisCluster)
        if cluster and ("{" in prefix or "}" in prefix):
            raise ValueError("on Redis Cluster the prefix may not contain { or }: hash tags")
        if shards > 1 and not cluster:
            raise ValueError("shards > 1 spreads a store over Redis Cluster slots: cluster only")
        self.shards = shards
        if not cluster:
            self._shards = [_Shard.named(prefix, max_entries, max_bytes)]
        elif shards == 1:
            self._shards = [_Shard.named("{" + prefix + "}", max_entries, max_bytes)]
        else:
            each = _share(max_entries, shards), _share(max_bytes, shards)
            self._shards = [_Shard.named(f"{{{prefix}{i}}}", *each) for i in range(shards)]
        self._evictions = dict.fromkeys(EVICTION_CAUSES, 0)
        self._closed = False
        register = self._client.register_script
        self._get = register(lua.GET)
        self._set = register(lua.SET)
        self._delete = register(lua.DELETE)
        self._reap = register(lua.REAP)
        self._clear_batch = register(lua.CLEAR_BATCH)
        self._tidy = register(lua.TIDY)
        self._renew = register(lua.RENEW)
        self._release = register(lua.RELEASE)
        self._get_or_lease = register(lua.GET_OR_LEASE)
        self._set_and_release = register(lua.SET_AND_RELEASE)
        self._scripts: list[Any] = [
            self._get, self._set, self._delete, self._reap, self._clear_batch, self._tidy,
            self._renew, self._release, self._get_or_lease, self._set_and_release,
        ]  # fmt: skip
        # On a cluster, scripts are loaded on every primary before the first command: many
        # concurrent first calls each hitting NOSCRIPT made redis-py's cluster client drop
        # connections other commands were using (measured: 2 of 8 runs of 300 sets failed).
        self._unloaded: asyncio.Lock | None = asyncio.Lock() if cluster else None

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Redis:
        """The ``redis.asyncio`` client this store talks through."""
        return self._client  # type: ignore[no-any-return]

    @asynccontextmanager
    async def _io(self, what: str) -> AsyncIterator[None]:
        """Map redis errors to ``StoreError`` (naming the server, never its password)."""
        if self._closed:
            raise StoreError(f"redis cache {self._where} is closed")
        from redis.exceptions import RedisClusterException, RedisError

        try:
            if self._unloaded is not None:
                await self._load_scripts()
            async with self._limit or nullcontext():
                yield
        except (RedisError, RedisClusterException) as exc:
            raise StoreError(
                f"redis cache {self._where}: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def _load_scripts(self) -> None:
        lock = self._unloaded
        if lock is None:
            return
        async with lock:
            if self._unloaded is None:
                return
            for script in self._scripts:
                await self._client.script_load(script.script)
            self._unloaded = None

    def _shard(self, key: str) -> _Shard:
        shards = self._shards
        if len(shards) == 1:
            return shards[0]
        return shards[zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(shards)]

    def _keys(self, key: str) -> list[str]:
        shard = self._shard(key)
        return [shard.entry_prefix + key, *shard.meta]

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key`` (refreshing its idle time and LRU rank), or None."""
        async with self._io("get"):
            result = await self._get(keys=self._keys(key), args=[key])
        if isinstance(result, int):
            self._evictions["expired"] += result
            return None
        try:
            return decode_entry(result)
        except ValueError:
            # A corrupt value reads as a miss and goes, so the next answer replaces it.
            await self.delete(key)
            return None

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        """Store ``entry``; False (a ``size`` eviction) if it exceeds ``max_bytes``."""
        args = self._set_args(key, entry, ttl, tti)
        if args is None:
            return False
        async with self._io("set"):
            evicted, expired = await self._set(keys=self._keys(key), args=args)
        self._evictions["size"] += int(evicted)
        self._evictions["expired"] += int(expired)
        return True

    def _set_args(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None
    ) -> list[Any] | None:
        """The SET script's arguments, or None (a ``size`` eviction) for an oversized entry."""
        blob = encode_entry(entry)
        if self.max_bytes is not None and len(blob) > self.max_bytes:
            self._evictions["size"] += 1
            return None
        shard = self._shard(key)
        return [
            key,
            blob,
            len(blob),
            to_millis(shorter_lifetime(self.ttl, ttl)),
            to_millis(shorter_lifetime(self.tti, tti)),
            "" if shard.max_entries is None else shard.max_entries,
            "" if shard.max_bytes is None else shard.max_bytes,
            shard.entry_prefix,
        ]

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if a live entry was there."""
        async with self._io("delete"):
            result = int(await self._delete(keys=self._keys(key)[:4], args=[key]))
        if result:
            self._evictions["explicit" if result == 1 else "expired"] += 1
        return result == 1

    async def _reap_expired(self) -> None:
        """Forget the bookkeeping of entries Redis expired on its own."""
        for shard in self._shards:
            lru = shard.meta[0]
            async with self._io("count"):
                cursor = 0
                while True:
                    cursor, members = await self._client.zscan(lru, cursor, count=_BATCH)
                    if members:
                        args = [shard.entry_prefix, *(m for m, _ in members)]
                        # KEYS[1] is unused: the lru key stands in, so all keys share a slot.
                        reaped = await self._reap(keys=[lru, *shard.meta[:3]], args=args)
                        self._evictions["expired"] += int(reaped)
                    if cursor == 0:
                        break

    async def clear(self) -> None:
        """Delete every entry under this store's prefix (leases in progress are kept)."""
        for shard in self._shards:
            async with self._io("clear"):
                lru = shard.meta[0]
                meta = [lru, *shard.meta[:3]]
                while members := await self._client.zrange(lru, 0, _BATCH - 1):
                    deleted, expired = await self._clear_batch(
                        keys=meta, args=[shard.entry_prefix, *members]
                    )
                    self._evictions["explicit"] += int(deleted)
                    self._evictions["expired"] += int(expired)
                # Entries the sorted set does not know (written by a foreign tool, or left by
                # a crash of bookkeeping) still go: SCAN the prefix, never FLUSHDB.
                pattern = glob_escape(shard.entry_prefix) + "*"
                async for batch in self._scan_batches(pattern):
                    self._evictions["explicit"] += int(await self._client.unlink(*batch))
                await self._tidy(keys=list(shard.meta))

    async def clear_tenant(self, tenant: str | None) -> int:
        """Delete ``tenant``'s entries under this store's prefix; return how many live ones
        went. Tenant keys share a prefix, so they are found where every process sees them:
        each shard's LRU set (``ZSCAN MATCH``), then the keyspace (``SCAN MATCH``, on every
        primary of a cluster) for entries the set does not know. Each batch is one script
        that deletes the entries with their bookkeeping, so an entry written meanwhile is
        either deleted whole or kept whole (a later write is simply not seen)."""
        head = tenant_key_prefix(tenant)
        removed = 0
        for shard in self._shards:
            lru = shard.meta[0]
            meta = [lru, *shard.meta[:3]]
            async with self._io("clear"):
                members = self._client.zscan_iter(lru, match=glob_escape(head) + "*", count=_BATCH)
                async for batch in _batches(member async for member, _ in members):
                    removed += await self._clear_members(meta, shard.entry_prefix, batch)
                skip = len(shard.entry_prefix.encode("utf-8", "surrogatepass"))
                pattern = glob_escape(shard.entry_prefix + head) + "*"
                async for batch in self._scan_batches(pattern):
                    names = [name[skip:] for name in batch]
                    removed += await self._clear_members(meta, shard.entry_prefix, names)
        return removed

    async def _clear_members(self, meta: list[str], entry_prefix: str, members: list[bytes]) -> int:
        """Delete ``members``' entries and bookkeeping in one script; the live ones deleted."""
        deleted, expired = await self._clear_batch(keys=meta, args=[entry_prefix, *members])
        self._evictions["explicit"] += int(deleted)
        self._evictions["expired"] += int(expired)
        return int(deleted)

    def _scan_batches(self, pattern: str) -> AsyncIterator[list[bytes]]:
        return _batches(self._client.scan_iter(match=pattern, count=_BATCH))

    async def count(self) -> int:
        """The exact number of live entries under the prefix."""
        await self._reap_expired()
        total = 0
        for shard in self._shards:
            async with self._io("count"):
                total += int(await self._client.zcard(shard.meta[0]))
        return total

    async def total_bytes(self) -> int:
        """The encoded size of all live entries under the prefix."""
        await self._reap_expired()
        total = 0
        for shard in self._shards:
            async with self._io("count"):
                total += int(await self._client.get(shard.meta[2]) or 0)
        return total

    def evictions(self) -> Mapping[str, int]:
        """Evictions this process made or noticed, by cause."""
        return dict(self._evictions)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """``SET lease owner NX PX ttl``: True when this owner now holds the lease."""
        async with self._io("lease"):
            return bool(
                await self._client.set(
                    self._shard(key).lease_prefix + key, owner, nx=True, px=int(to_millis(ttl))
                )
            )

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lease; False if it expired or changed hands."""
        async with self._io("lease"):
            return bool(
                await self._renew(
                    keys=[self._shard(key).lease_prefix + key], args=[owner, to_millis(ttl)]
                )
            )

    async def release_lease(self, key: str, owner: str) -> None:
        """Drop ``owner``'s lease on ``key`` (someone else's is left alone)."""
        async with self._io("lease"):
            await self._release(keys=[self._shard(key).lease_prefix + key], args=[owner])

    async def lease_held(self, key: str) -> bool:
        """True while a live lease on ``key`` exists."""
        async with self._io("lease"):
            return bool(await self._client.exists(self._shard(key).lease_prefix + key))

    async def get_or_lease(
        self, key: str, owner: str, ttl: float
    ) -> tuple[CacheEntry | None, bool]:
        """The live entry, or (None, whether ``owner`` took the lease): one script."""
        keys = [*self._keys(key), self._shard(key).lease_prefix + key]
        async with self._io("get"):
            result = await self._get_or_lease(keys=keys, args=[key, owner, to_millis(ttl)])
        if isinstance(result, list):
            expired, taken = result
            self._evictions["expired"] += int(expired)
            return None, bool(taken)
        try:
            return decode_entry(result), False
        except ValueError:
            # A corrupt value reads as a miss and goes; the lease is taken the plain way.
            await self.delete(key)
            return None, await self.acquire_lease(key, owner, ttl)

    async def set_and_release(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None, owner: str
    ) -> bool:
        """Store ``entry`` and drop ``owner``'s lease on ``key``: one script."""
        args = self._set_args(key, entry, ttl, tti)
        if args is None:
            await self.release_lease(key, owner)
            return False
        keys = [*self._keys(key), self._shard(key).lease_prefix + key]
        async with self._io("set"):
            evicted, expired = await self._set_and_release(keys=keys, args=[*args, owner])
        self._evictions["size"] += int(evicted)
        self._evictions["expired"] += int(expired)
        return True

    async def aclose(self) -> None:
        """Close the client if this store made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
            for helper in self._helpers:
                await helper.aclose()
