"""``CachedProvider``: the response cache, as a provider that wraps another provider.

One path serves ``complete()`` and ``stream()``: validate the request (bad input fails here,
before any lookup); build the key; read the store unless ``no_cache``; ask the one pure rule,
:func:`~vex_llm.cache.decision.decide`, what to do (hit, join, lead, bypass, only-if-cached
miss); then carry it out. Everything that goes upstream rides a
:class:`~vex_llm.cache.flight.Flight` (run by ``calls.UpstreamCalls``): one upstream call per
key however many identical callers arrive, JSON and streams alike, whichever kind started it.
A leader's flight first takes the cross-process lease when the store implements
``LeaseStore`` (see ``lease``), so identical misses fold across processes too. The answer is
stored unless ``no_store``; errors, cancelled and partial answers never are.

With ``config.stale_if_error`` (a grace past the ttl, see ``staleness``), an entry past its
ttl but within the grace is kept aside while the request goes upstream as on a miss; if the
upstream fails (5xx, 429, timeout, unreachable, open breaker; never a 4xx), the stale entry
answers, with the outcome ``stale`` and its age. A stream waits for its first chunk (or the
failure) before it is handed over, so the same holds for streams. With
``config.stale_while_revalidate``, an entry that far past its ttl answers at once (outcome
``stale``, counted as a hit) while one background flight refreshes it.

The store is never allowed to fail a request: the request path reaches it only through
``access.StoreAccess``, which turns a store failure (``STORE_FAILURES``) into a miss or a
skipped write, counts it in ``store_errors`` and logs it once per incident on the
``vex_llm.cache`` logger. Anything else (a bug) is raised, on the JSON and the stream path
alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from hashlib import sha256

from vex_llm.cache.access import StoreAccess
from vex_llm.cache.calls import UpstreamCalls
from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.decision import LEAD, Decision, Stored, decide, reads_store
from vex_llm.cache.embeddings import EmbeddingCache, EmbeddingResult
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.flight import DeadlinePassed, Flight
from vex_llm.cache.key import (
    TenantPrefixes,
    hash_material,
    identity_prefix,
    material_after,
    short_key,
)
from vex_llm.cache.lease import LeasePolicy, LeaseStart
from vex_llm.cache.outcome import CacheOutcome, CacheResult
from vex_llm.cache.staleness import covers, freshness
from vex_llm.cache.stats import CacheStats, Counters
from vex_llm.cache.stores.base import (
    CacheStore,
    CacheStoreWithSyncOps,
)
from vex_llm.cache.stores.memory import MemoryStore
from vex_llm.cache.streaming import CachedStream, entry_answer, iterate, replay_chunks
from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import CacheMiss, LLMError, Timeout
from vex_llm.models import CacheControl, Chunk, LLMRequest, LLMResponse
from vex_llm.pricing import Price
from vex_llm.provider import LLMProvider, WrapperProvider

__all__ = ["CacheOutcome", "CacheResult", "CachedProvider"]


def _not_a_request(request: object, error: AttributeError) -> Exception:
    """The error for a failed ``validate`` lookup: a TypeError unless it was a real request."""
    if isinstance(request, LLMRequest):
        return error
    return TypeError(f"request must be an LLMRequest, not {type(request).__name__}")


log = logging.getLogger("vex_llm.cache")


class CachedProvider(WrapperProvider):
    """Wraps ``provider`` with a response cache configured by ``config``.

    ``store`` defaults to a :class:`MemoryStore` sized by ``config``, which this cache owns
    and closes. A store you pass is yours (close it yourself: several caches may share it),
    and keeps the bounds it was built with (``open_store(url, max_entries=..., ...)``), while
    ``config``'s ttl/tti still bound every entry written through this cache. ``config.limits``,
    when set, becomes the wrapped provider's (see ``WrapperProvider``). ``clock`` (wall-clock
    seconds) stamps entries and is injectable for tests. ``lease`` times cross-process
    single-flight when the store supports it (a process that received another process's
    answer counts as ``coalesced``). ``price`` (the wrapped provider's, see
    ``vex_llm.pricing``) fills ``CacheStats.dollars_spent`` and ``dollars_saved``; without
    one they are None.
    """

    def __init__(
        self,
        provider: LLMProvider,
        config: LLMCacheConfig | None = None,
        *,
        store: CacheStore | None = None,
        clock: Callable[[], float] = time.time,
        lease: LeasePolicy | None = None,
        price: Price | None = None,
    ) -> None:
        super().__init__(provider)
        self.config = config or LLMCacheConfig.default()
        if not isinstance(self.config, LLMCacheConfig):
            raise TypeError("config must be an LLMCacheConfig")
        if self.config.limits is not None:
            self.limits = self.config.limits
        self._owns_store = store is None
        if store is None:  # not ``store or``: an empty store may be falsy (``__len__``)
            store = MemoryStore(
                self.config.max_entries,
                self.config.max_bytes,
                ttl=self.config.kept_for,
                tti=self.config.tti_seconds,
            )
        self.store: CacheStore = store
        self._clock = clock
        # With a stale grace (either mode), every entry read is judged fresh or stale.
        self._grace = self.config.grace
        # The identity is fixed for the provider's life; computing it once keeps it off the
        # hit path.
        self._identity = tuple(provider.cache_identity())
        self._key_prefix = identity_prefix(self._identity)
        # Each tenant's store-key prefix (its tag), a dict lookup on the hit path.
        self._tenant_prefixes = TenantPrefixes()
        # Exactly MemoryStore: a subclass may override get() (and fail), so it takes the
        # general path.
        self._get_now = self.store.get_now if type(self.store) is MemoryStore else None
        self._counters = Counters(price)
        # The store, fail-open, with its leases (see access.StoreAccess).
        self._store = StoreAccess(
            self.store,
            self._counters,
            lease or LeasePolicy(),
            is_fresh=None if self._grace is None else self._is_fresh,
        )
        # Everything that goes upstream: one flight per key, the lease, the store write.
        self._calls = UpstreamCalls(provider, self._store, self._counters, self.config, clock)
        self._flights = self._calls.flights
        # Embeddings: cached per input, through the same store access, counters and flights.
        self._embeddings = EmbeddingCache(
            provider,
            self._store,
            self._counters,
            self._flights,
            self.config,
            clock,
            self._identity,
            is_fresh=None if self._grace is None else self._is_fresh,
            get_now=self._get_now,
        )

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

    def key_for(self, request: LLMRequest) -> str:
        """The cache key of ``request`` in this cache (its tenant's tag, ``:``, a SHA-256)."""
        material = material_after(self._key_prefix, request)
        return self._tenant_prefixes[request.tenant_id] + hash_material(material)

    # -- the request path -------------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer from the cache, or from the wrapped provider (once per key in flight)."""
        if self._grace is not None:  # entries may be stale: the general path judges them
            return (await self.complete_result(request)).response
        try:
            request.validate(self.inner.limits)
        except AttributeError as exc:  # a try costs nothing on the hit path; a call would
            raise _not_a_request(request, exc) from None
        key = (
            self._tenant_prefixes[request.tenant_id]
            + sha256(material_after(self._key_prefix, request)).hexdigest()
        )
        control = request.cache
        # _decide's steps, spelled out: the hit path is what the cache is for, and every call
        # saved here shows in benchmarks/cache_hit.py.
        if control.no_cache:  # = not reads_store(control), without the call
            decision = decide(control, "unread", self._flights.get(key) is not None)
            return (await self._complete_via_flight(request, key, decision)).response
        # The memory store cannot fail and needs no await, so it is read directly.
        get_now = self._get_now
        if get_now is not None:
            entry = get_now(key)
            leased = None
        else:
            entry, leased = await self._read_for(key, control)
        if entry is None:
            if leased != "acquired":  # a lease taken here is for a call
                entry = self._flights.writing(key)  # answered, its store write not over yet
            if entry is None:
                decision, leased = self._decide_miss(control, key, leased)
                return (await self._complete_via_flight(request, key, decision, leased)).response
        # decide(control, "fresh", any) is HIT whenever the store was read: decide's contract
        # (tests/test_decision.py), so the hit path skips the call.
        response = entry.response
        self._counters.hit(response.usage)
        # A recorded stream's entry keeps typed fields; the whole answer is in its recording.
        return response if entry.recording is None else entry_answer(entry)

    async def complete_result(self, request: LLMRequest) -> CacheResult:
        """Like :meth:`complete` (a miss calls the wrapped provider), and also say how the
        answer was served: outcome, key, age (for the proxy and the CLI)."""
        key, decision, entry, leased = await self._decide(request)
        if decision.action == "hit":
            assert entry is not None
            return CacheResult(entry_answer(entry), self._hit_outcome(entry), key, self._age(entry))
        if not decision.stale_on_error:
            return await self._complete_via_flight(request, key, decision, leased)
        assert entry is not None
        try:
            return await self._complete_via_flight(request, key, decision, leased)
        except LLMError as exc:
            if not covers(exc):
                raise
            return self._stale(key, entry, exc)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The vectors of ``request.inputs``, each input cached on its own: only the inputs
        nobody has go upstream, in one call (see ``cache.embeddings``)."""
        return (await self._embeddings.embed(request)).response

    async def embed_result(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Like :meth:`embed`, and also say how the inputs were served (for the proxy)."""
        return await self._embeddings.embed(request)

    async def lookup(self, request: LLMRequest) -> CacheResult:
        """Deprecated name of :meth:`complete_result` (it calls upstream on a miss)."""
        warnings.warn(
            "CachedProvider.lookup() is now complete_result(): it calls the upstream on a miss",
            DeprecationWarning,
            stacklevel=2,
        )
        return await self.complete_result(request)

    async def open_stream(self, request: LLMRequest) -> CachedStream:
        """Decide how a stream request is served, then return it to iterate.

        Validation, ``CacheMiss`` (``only_if_cached``) and the outcome (hit, miss, coalesced,
        bypass) are settled here, before the first chunk. A leader whose store arbitrates
        across processes waits here for the lease: if another process answers meanwhile,
        the stream is ``coalesced`` and replays that answer.
        """
        key, decision, entry, leased = await self._decide(request)
        if decision.action == "hit":
            assert entry is not None
            outcome = self._hit_outcome(entry)
            return CachedStream(outcome, key, replay=replay_chunks(entry), age=self._age(entry))
        flight, joined = self._calls.board(request, key, decision, leased, streamed=True)
        deadline = self._deadline(request)
        stale = entry if decision.stale_on_error else None
        try:
            if not joined:
                await flight.known_origin(deadline)
            if stale is not None:
                # The stale entry stands in only before the first chunk: wait for it.
                while not flight.count and not flight.finished:
                    await flight.changed(deadline)
        except DeadlinePassed:
            flight.leave()
            if stale is not None:
                return self._stale_stream(key, stale, Timeout("the request's timeout passed"))
            raise Timeout(f"no answer within {request.timeout:g} s") from None
        except BaseException as exc:
            flight.leave()
            if stale is not None and isinstance(exc, LLMError) and covers(exc):
                return self._stale_stream(key, stale, exc)
            raise
        failed = flight.error if not flight.count else None
        if stale is not None and failed is not None and covers(failed):
            flight.leave()
            return self._stale_stream(key, stale, failed)
        outcome = self._outcome(decision, joined, flight)
        if outcome == "coalesced":
            return CachedStream(
                outcome, key, flight=flight, deadline=deadline, on_final=self._saved_by_stream
            )
        # This caller's own upstream call enforces its timeout.
        return CachedStream(outcome, key, flight=flight)

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream from the cache: replay a hit, attach to an identical call in flight, or
        stream from the wrapped provider while recording (stored after the terminal chunk)."""
        async for chunk in iterate(await self.open_stream(request)):
            yield chunk

    async def _decide(
        self, request: LLMRequest
    ) -> tuple[str, Decision, CacheEntry | None, LeaseStart | None]:
        """Validate, key, read (unless ``no_cache``) and decide; count hits and refusals."""
        try:
            request.validate(self.inner.limits)
        except AttributeError as exc:
            raise _not_a_request(request, exc) from None
        key = (
            self._tenant_prefixes[request.tenant_id]
            + sha256(material_after(self._key_prefix, request)).hexdigest()
        )
        control = request.cache
        entry = None
        leased: LeaseStart | None = None
        if reads_store(control):
            get_now = self._get_now
            if get_now is not None:
                entry = get_now(key)
            else:
                entry, leased = await self._read_for(key, control)
            if entry is None and leased != "acquired":  # a lease taken here is for a call
                entry = self._flights.writing(key)  # answered, its store write not over yet
        stored: Stored = "unread" if control.no_cache else "absent" if entry is None else "fresh"
        if entry is not None and self._grace is not None:
            config = self.config
            state = freshness(
                self._age(entry),
                config.ttl_seconds,
                config.stale_if_error_seconds,
                control.stale_if_error,
                config.stale_while_revalidate_seconds,
            )
            if state == "expired":
                stored, entry = "absent", None
            else:
                stored = state
        if stored == "absent":
            decision, leased = self._decide_miss(control, key, leased)
        else:
            decision = decide(
                control, stored, stored != "fresh" and self._flights.get(key) is not None
            )
        if decision.action == "hit":
            assert entry is not None
            self._count_hit(entry)
            if decision.revalidate:
                self._refresh(request, key)
        elif decision.action == "only_if_cached_miss":
            self._counters.only_if_cached_misses += 1
            raise CacheMiss(f"no cached answer for this request (key {short_key(key)}...)")
        return key, decision, entry, leased

    async def _read_for(
        self, key: str, control: CacheControl
    ) -> tuple[CacheEntry | None, LeaseStart | None]:
        """Read ``key``. Where a miss would lead under the lease (and no call for the key is
        in flight here), the read takes the lease too (``StoreAccess.read_taking_lease``)."""
        if self._flights.get(key) is not None or not decide(control, "absent", False).lease:
            return await self._store.read(key), None
        return await self._store.read_taking_lease(key)

    def _decide_miss(
        self, control: CacheControl, key: str, leased: LeaseStart | None
    ) -> tuple[Decision, LeaseStart | None]:
        """The decision for a miss (no await between it and boarding the flight)."""
        decision = decide(control, "absent", self._flights.get(key) is not None)
        if not decision.lease:
            if leased == "acquired":
                self._store.drop_lease(key)  # an identical call started here while we read
            return decision, None
        return decision, leased

    def _count_hit(self, entry: CacheEntry) -> None:
        self._counters.hit(entry.response.usage)

    def _age(self, entry: CacheEntry) -> float:
        return max(0.0, self._clock() - entry.stored_at)

    def _hit_outcome(self, entry: CacheEntry) -> CacheOutcome:
        """``hit``, or ``stale`` for an entry past its ttl (stale-while-revalidate)."""
        ttl = self.config.ttl_seconds
        if self._grace is not None and ttl is not None and self._age(entry) > ttl:
            return "stale"
        return "hit"

    def _refresh(self, request: LLMRequest, key: str) -> None:
        """Start the one background flight that refreshes ``key`` (stale-while-revalidate).

        It is a shared flight like any miss's, so identical requests join it; the flight is
        its own member until it ends, so a joiner that leaves does not cancel it.
        """
        flight, _ = self._calls.board(request, key, LEAD, None, streamed=False)
        assert flight.task is not None
        flight.task.add_done_callback(lambda _task: flight.leave())

    def _stale(self, key: str, entry: CacheEntry, error: BaseException) -> CacheResult:
        """The stale ``entry`` standing in for an upstream that failed with ``error``."""
        self._counters.stale += 1
        log.info("upstream failed (%s); answering with a stale entry", type(error).__name__)
        return CacheResult(entry_answer(entry), "stale", key, self._age(entry))

    def _stale_stream(self, key: str, entry: CacheEntry, error: BaseException) -> CachedStream:
        result = self._stale(key, entry, error)
        return CachedStream("stale", key, replay=replay_chunks(entry), age=result.age)

    @staticmethod
    def _deadline(request: LLMRequest) -> float | None:
        if request.timeout is None:
            return None
        return asyncio.get_running_loop().time() + request.timeout

    def _outcome(self, decision: Decision, joined: bool, flight: Flight) -> CacheOutcome:
        """How a caller that went the flight way was served, counted once per caller."""
        if decision.action == "bypass":
            self._counters.bypasses += 1
            return "bypass"
        if joined or flight.origin == "shared":
            self._counters.coalesced += 1
            return "coalesced"
        return "miss"

    def _saved_by_stream(self, final: Chunk) -> None:
        if final.usage is not None:
            self._counters.save(final.usage)

    async def _complete_via_flight(
        self,
        request: LLMRequest,
        key: str,
        decision: Decision,
        leased: LeaseStart | None = None,
    ) -> CacheResult:
        if decision.action == "only_if_cached_miss":
            self._counters.only_if_cached_misses += 1
            raise CacheMiss(f"no cached answer for this request (key {short_key(key)}...)")
        flight, joined = self._calls.board(request, key, decision, leased, streamed=False)
        try:
            response = await flight.result(self._deadline(request))
        except DeadlinePassed:
            raise Timeout(f"no answer within {request.timeout:g} s") from None
        finally:
            flight.leave()
        outcome = self._outcome(decision, joined, flight)
        if outcome == "coalesced":
            self._counters.save(response.usage)
        return CacheResult(response, outcome, key)

    # -- the store, fail-open ---------------------------------------------------------------

    def _is_fresh(self, entry: CacheEntry) -> bool:
        """Whether ``entry`` is within its ttl (not kept on for stale-if-error)."""
        assert self._grace is not None
        return freshness(self._age(entry), self.config.ttl_seconds, self._grace) == "fresh"

    # -- contents and counters --------------------------------------------------------------

    def _sync_store(self, what: str) -> CacheStoreWithSyncOps:
        if not isinstance(self.store, CacheStoreWithSyncOps):
            raise TypeError(
                f"{type(self.store).__name__} cannot {what} without I/O; "
                f"use the async variant (a{what.split()[0]}())"
            )
        return self.store

    def _snapshot(self, entries: int, nbytes: int) -> CacheStats:
        c = self._counters
        spent, saved = c.dollars()
        return CacheStats(
            hits=c.hits,
            misses=c.misses,
            coalesced=c.coalesced,
            bypasses=c.bypasses,
            errors=c.errors,
            store_errors=c.store_errors,
            only_if_cached_misses=c.only_if_cached_misses,
            stale=c.stale,
            evictions=dict(self.store.evictions()),
            entries=entries,
            bytes=nbytes,
            tokens_saved=c.tokens_saved,
            dollars_spent=spent,
            dollars_saved=saved,
        )

    def stats(self) -> CacheStats:
        """A snapshot of the counters and the store's exact contents."""
        store = self._sync_store("stats")
        return self._snapshot(store.count_now(), store.bytes_now())

    async def astats(self) -> CacheStats:
        """:meth:`stats` for any store, including ones that need I/O to count."""
        return self._snapshot(await self.store.count(), await self.store.total_bytes())

    def count(self) -> int:
        """The number of live entries (``CacheStats.entries``; expired and evicted ones are
        not counted). Stores that need I/O to count: :meth:`acount`."""
        return self._sync_store("count").count_now()

    async def acount(self) -> int:
        """:meth:`count` for any store."""
        return await self.store.count()

    def size(self) -> int:
        """Deprecated name of :meth:`count` (a number of entries, not bytes)."""
        warnings.warn("CachedProvider.count() is now count()", DeprecationWarning, stacklevel=2)
        return self.count()

    async def asize(self) -> int:
        """Deprecated name of :meth:`acount`."""
        warnings.warn("CachedProvider.acount() is now acount()", DeprecationWarning, stacklevel=2)
        return await self.acount()

    def clear(self) -> None:
        """Remove every entry (counters are kept; they describe the cache's history)."""
        self._sync_store("clear").clear_now()

    async def aclear(self) -> None:
        """:meth:`clear` for any store."""
        await self.store.clear()

    async def aclear_tenant(self, tenant: str | None) -> int:
        """Remove the entries of requests made with ``tenant_id=tenant`` (None: those made
        without one), whichever provider or cache wrote them into this store; return how many
        were removed. Other tenants' entries stay. Entries the tenant writes meanwhile are
        either removed or kept whole, never half (see ``CacheStore.clear_tenant``).

        Store failures raise (``StoreError``): an explicit clear must not fail silently.
        """
        return await self.store.clear_tenant(tenant)

    async def aclose(self) -> None:
        """Close the wrapped provider, and the store if this cache made it (a store passed in
        is the caller's, and may be shared)."""
        await self._store.settle()  # lease releases still on their way: bounded
        try:
            if self._owns_store:
                await self.store.aclose()
        finally:
            await self.inner.aclose()
