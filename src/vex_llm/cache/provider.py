"""``CachedProvider``: the response cache, as a provider that wraps another provider.

The request path, in order: validate the request (bad input fails here, before any lookup);
build the key; unless ``no_cache``, answer from the store (a hit) or, with
``only_if_cached``, raise ``CacheMiss``; otherwise run the upstream call once per key however
many identical callers arrive (single-flight), store the answer unless ``no_store``, and hand
it to every waiter. Errors, cancelled and partial answers are never stored.

Beneath the in-process single-flight, a store that implements ``LeaseStore`` also folds
identical misses across processes (see ``lease``). The store is never allowed to fail a
request: ``_read`` and ``_write`` (the only places the request path touches it) turn a store
failure into a miss or a skipped write, count it in ``store_errors`` and log it once per
incident on the ``vex_llm.cache`` logger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Literal

from vex_llm.cache.config import LLMCacheConfig, effective_expiry
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.flight import SingleFlight
from vex_llm.cache.key import hash_material, identity_prefix, material_after
from vex_llm.cache.lease import LeasePolicy, fetch_with_lease
from vex_llm.cache.stats import CacheStats, Counters
from vex_llm.cache.stores.base import STORE_FAILURES, CacheStore, LeaseStore, SyncCacheStore
from vex_llm.cache.stores.memory import MemoryStore
from vex_llm.cache.streaming import CachedStream, StreamCache, iterate
from vex_llm.errors import CacheMiss, Timeout
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider

__all__ = ["CacheOutcome", "CacheResult", "CachedProvider"]


def _not_a_request(request: object, error: AttributeError) -> Exception:
    """The error for a failed ``validate`` lookup: a TypeError unless it was a real request."""
    if isinstance(request, LLMRequest):
        return error
    return TypeError(f"request must be an LLMRequest, not {type(request).__name__}")


log = logging.getLogger("vex_llm.cache")

#: How a request was served: from the store, by an upstream call it made, by joining an
#: identical in-flight call, or upstream without a lookup (``no_cache``).
CacheOutcome = Literal["hit", "miss", "coalesced", "bypass"]


@dataclass(frozen=True, slots=True)
class CacheResult:
    """A response with how the cache served it: ``outcome``, ``key`` and ``age`` (s, hits)."""

    response: LLMResponse
    outcome: CacheOutcome
    key: str
    age: float | None = None


class CachedProvider(LLMProvider):
    """Wraps ``provider`` with a response cache configured by ``config``.

    ``store`` defaults to a :class:`MemoryStore` sized by ``config``; a store you pass keeps
    the bounds it was built with (``open_store(url, max_entries=..., ...)``), while ``config``'s
    ttl/tti still bound every entry written through this cache. ``clock`` (wall-clock
    seconds) stamps entries and is injectable for tests. ``lease`` times cross-process
    single-flight when the store supports it (a process that received another process's
    answer counts as ``coalesced``).
    """

    def __init__(
        self,
        provider: LLMProvider,
        config: LLMCacheConfig | None = None,
        *,
        store: CacheStore | None = None,
        clock: Callable[[], float] = time.time,
        lease: LeasePolicy | None = None,
    ) -> None:
        if not isinstance(provider, LLMProvider):
            raise TypeError(f"provider must be an LLMProvider, not {type(provider).__name__}")
        self.config = config or LLMCacheConfig.default()
        if not isinstance(self.config, LLMCacheConfig):
            raise TypeError("config must be an LLMCacheConfig")
        self.inner = provider
        self.limits = self.config.limits
        if store is None:  # not ``store or``: an empty store may be falsy (``__len__``)
            store = MemoryStore(
                self.config.max_entries,
                self.config.max_bytes,
                ttl=self.config.ttl_seconds,
                tti=self.config.tti_seconds,
            )
        self.store: CacheStore = store
        self._clock = clock
        # The identity is fixed for the provider's life; computing it once keeps it off the
        # hit path.
        self._identity = tuple(provider.cache_identity())
        self._key_prefix = identity_prefix(self._identity)
        # Exactly MemoryStore: a subclass may override get() (and fail), so it takes the
        # general path.
        self._get_now = self.store.get_now if type(self.store) is MemoryStore else None
        self._counters = Counters()
        # (response, came from another process): see _fetch_shared.
        self._flight: SingleFlight[tuple[LLMResponse, bool]] = SingleFlight()
        self._lease = lease or LeasePolicy()
        self._lease_store = (
            self.store if self._lease.enabled and isinstance(self.store, LeaseStore) else None
        )
        self._lease_owner = f"{os.getpid()}-{secrets.token_hex(8)}"
        # The kinds of store operation ("read", "write") that failed in the current incident
        # (logged once). Only a success of a kind that failed ends it: with a full disk,
        # reads keep working while writes fail, and must not log a recovery per request.
        self._store_failing: set[str] = set()
        self._streams = StreamCache(self)

    @classmethod
    def wrap(cls, provider: LLMProvider) -> CachedProvider:
        """Wrap ``provider`` with the default configuration."""
        return cls(provider, LLMCacheConfig.default())

    def name(self) -> str:
        """``cached(<inner name>)``."""
        return f"cached({self.inner.name()})"

    def cache_identity(self) -> tuple[str, ...]:
        """The wrapped provider's identity: a cache in front changes no answer."""
        return self._identity

    async def is_available(self) -> bool:
        """Whether the wrapped provider is available."""
        return await self.inner.is_available()

    def key_for(self, request: LLMRequest) -> str:
        """The cache key of ``request`` in this cache."""
        return hash_material(material_after(self._key_prefix, request))

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer from the cache, or from the wrapped provider (once per key in flight)."""
        try:
            request.validate(self.limits)
        except AttributeError as exc:  # a try costs nothing on the hit path; a call would
            raise _not_a_request(request, exc) from None
        key = sha256(material_after(self._key_prefix, request)).hexdigest()
        control = request.cache
        if not control.no_cache:
            # The hit path: kept short on purpose, it is what the cache is for. The memory
            # store cannot fail and needs no await, so it is read directly.
            get_now = self._get_now
            entry = get_now(key) if get_now is not None else await self._read(key)
            if entry is not None:
                counters = self._counters
                counters.hits += 1
                counters.tokens_saved += entry.response.usage.total_tokens
                return entry.response
        return (await self._serve_uncached(request, key)).response

    async def lookup(self, request: LLMRequest) -> CacheResult:
        """Like :meth:`complete`, and also say how the answer was served (for the proxy/CLI)."""
        try:
            request.validate(self.limits)
        except AttributeError as exc:  # a try costs nothing on the hit path; a call would
            raise _not_a_request(request, exc) from None
        key = sha256(material_after(self._key_prefix, request)).hexdigest()
        if not request.cache.no_cache:
            entry = await self._read(key)
            if entry is not None:
                self._counters.hits += 1
                self._counters.tokens_saved += entry.response.usage.total_tokens
                age = max(0.0, self._clock() - entry.stored_at)
                return CacheResult(entry.response, "hit", key, age)
        return await self._serve_uncached(request, key)

    async def _serve_uncached(self, request: LLMRequest, key: str) -> CacheResult:
        control = request.cache
        if control.no_cache:
            # A caller asking for a fresh sample gets its own call, never a shared one.
            self._counters.bypasses += 1
            return CacheResult(await self._fetch_and_store(request, key), "bypass", key)
        if control.only_if_cached:
            self._counters.only_if_cached_misses += 1
            raise CacheMiss(f"no cached answer for this request (key {key[:16]}...)")
        shared_call = self._flight.run(key, lambda: self._fetch_shared(request, key))
        if request.timeout is None:
            (response, shared), joined = await shared_call
        else:
            # The call may be another request's (timeout is not in the key), or wait on
            # another process's lease: this caller's own timeout still bounds its wait.
            try:
                async with asyncio.timeout(request.timeout):
                    (response, shared), joined = await shared_call
            except TimeoutError:
                raise Timeout(f"no answer within {request.timeout:g} s") from None
        if joined or shared:
            self._counters.coalesced += 1
            self._counters.tokens_saved += response.usage.total_tokens
            return CacheResult(response, "coalesced", key)
        return CacheResult(response, "miss", key)

    async def _fetch_and_store(self, request: LLMRequest, key: str) -> LLMResponse:
        if not request.cache.no_cache:
            self._counters.misses += 1
        try:
            response = await self.inner.complete(request)
        except Exception:
            self._counters.errors += 1
            raise
        if not request.cache.no_store:
            await self._store_answer(key, request, response)
        return response

    async def _fetch_shared(self, request: LLMRequest, key: str) -> tuple[LLMResponse, bool]:
        """A miss, folded across processes when the store can arbitrate (else just fetch).

        ``no_store`` answers are never written, so other processes could only wait in vain:
        those requests take no lease.
        """
        if self._lease_store is None or request.cache.no_store:
            return await self._fetch_and_store(request, key), False
        return await fetch_with_lease(
            self._lease_store,
            key,
            self._lease_owner,
            self._lease,
            read=self._read,
            fetch=lambda: self._fetch_and_store(request, key),
            on_error=self._store_failed,
        )

    async def _read(self, key: str) -> CacheEntry | None:
        """The one place the request path reads the store; a failing store reads as a miss."""
        try:
            entry = await self.store.get(key)
        except STORE_FAILURES as exc:
            self._store_failed(exc, "read")
            return None
        if self._store_failing:
            self._store_recovered("read")
        return entry

    async def _write(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None
    ) -> None:
        """The one place the request path writes the store; a failing store skips the write."""
        try:
            await self.store.set(key, entry, ttl, tti)
        except STORE_FAILURES as exc:
            self._store_failed(exc, "write")
            return
        if self._store_failing:
            self._store_recovered("write")

    def _store_failed(self, exc: BaseException, kind: str = "write") -> None:
        # Lease operations (the default kind) write, and a write follows each of them.
        self._counters.store_errors += 1
        if not self._store_failing:
            log.warning(
                "cache store %r failed, answering from upstream until it recovers: %s",
                self.store,
                exc,
            )
        self._store_failing.add(kind)

    def _store_recovered(self, kind: str) -> None:
        if kind in self._store_failing:
            self._store_failing.clear()
            log.info("cache store %r recovered; caching resumes", self.store)

    async def _store_answer(
        self,
        key: str,
        request: LLMRequest,
        response: LLMResponse,
        chunks: tuple[Chunk, ...] | None = None,
    ) -> None:
        """Store a complete answer (and its recorded stream, if it was streamed)."""
        ttl, tti = effective_expiry(self.config, request.cache)
        # The size is the entry's persisted (JSON) size, the same figure for every store.
        entry = CacheEntry.of(response, self._clock(), chunks)
        await self._write(key, entry, ttl, tti)

    async def open_stream(self, request: LLMRequest) -> CachedStream:
        """Decide how a stream request is served, then return it to iterate.

        Validation, ``CacheMiss`` (``only_if_cached``) and the hit/miss/coalesced/bypass
        decision happen here, before the first chunk; see ``vex_llm.cache.streaming``.
        """
        return await self._streams.open(request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream from the cache: replay a hit, attach to an identical running stream, or
        stream from the wrapped provider while recording (stored after the terminal chunk)."""
        async for chunk in iterate(await self.open_stream(request)):
            yield chunk

    def _sync_store(self, what: str) -> SyncCacheStore:
        if not isinstance(self.store, SyncCacheStore):
            raise TypeError(
                f"{type(self.store).__name__} cannot {what} without I/O; "
                f"use the async variant (a{what.split()[0]}())"
            )
        return self.store

    def _snapshot(self, entries: int, nbytes: int) -> CacheStats:
        c = self._counters
        return CacheStats(
            hits=c.hits,
            misses=c.misses,
            coalesced=c.coalesced,
            bypasses=c.bypasses,
            errors=c.errors,
            store_errors=c.store_errors,
            only_if_cached_misses=c.only_if_cached_misses,
            evictions=dict(self.store.evictions()),
            entries=entries,
            bytes=nbytes,
            tokens_saved=c.tokens_saved,
        )

    def stats(self) -> CacheStats:
        """A snapshot of the counters and the store's exact contents."""
        store = self._sync_store("stats")
        return self._snapshot(store.count_now(), store.bytes_now())

    async def astats(self) -> CacheStats:
        """:meth:`stats` for any store, including ones that need I/O to count."""
        return self._snapshot(await self.store.count(), await self.store.total_bytes())

    def size(self) -> int:
        """The exact number of live entries (expired and evicted ones are not counted)."""
        return self._sync_store("size").count_now()

    async def asize(self) -> int:
        """:meth:`size` for any store."""
        return await self.store.count()

    def clear(self) -> None:
        """Remove every entry (counters are kept; they describe the cache's history)."""
        self._sync_store("clear").clear_now()

    async def aclear(self) -> None:
        """:meth:`clear` for any store."""
        await self.store.clear()

    async def aclose(self) -> None:
        """Close the store and the wrapped provider."""
        try:
            await self.store.aclose()
        finally:
            await self.inner.aclose()
