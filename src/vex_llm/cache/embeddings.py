"""``EmbeddingCache``: ``CachedProvider.embed``, caching per input, not per batch.

Each input has its own key (``embedding_keys``) and entry. A request's inputs are read from the
store together, then each is decided by the one rule, :func:`~vex_llm.cache.decision.decide`,
exactly as a chat request is: a fresh entry is a hit; an identical input already in flight
(from any request of this process) is joined; the rest lead (or bypass, for ``no_cache``).
Every input that leads rides its own :class:`~vex_llm.cache.flight.Flight`, so identical
inputs in flight at once are fetched once, and with a store that arbitrates across processes
(``LeaseStore``: SQLite, Redis) each leader first takes the input's lease
(``lease.fetch_with_lease``), so other processes wait for it instead of asking too. The
leaders of one request then go upstream *together*: one call with only the inputs nobody has
(in the caller's order), whose vectors are stored one entry per input; an input whose lease
another process held, and which that process did not answer in time, is asked for on its own.

The answer lists every input's vector in the caller's order (duplicates included). Its
``usage`` counts the prompt tokens sent upstream for this request; each stored vector keeps
its input's share of its batch's tokens (:func:`~vex_llm.cache.embedding_key.token_shares`),
and a hit or a joined input adds that share to ``tokens_saved``. Errors reach every waiter
and are never stored; stored entries that do not decode read as misses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from vex_llm.cache.access import StoreAccess
from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.decision import Decision, decide, reads_store
from vex_llm.cache.embedding_key import (
    embedding_entry,
    embedding_keys,
    entry_vector,
    token_shares,
)
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.flight import DeadlinePassed, Flight, Flights
from vex_llm.cache.lease import LeaseStart, fetch_with_lease
from vex_llm.cache.staleness import store_expiry
from vex_llm.cache.stats import Counters
from vex_llm.embeddings import Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import CacheMiss, InvalidResponse, LLMError, Timeout
from vex_llm.models import LLMResponse, Usage
from vex_llm.provider import LLMProvider

__all__ = ["EmbeddingCache", "EmbeddingOutcome", "EmbeddingResult"]

#: How a request's inputs were served: all from the cache, none, some (``partial``), all
#: without an upstream call of its own but some by joining another's (``coalesced``), or
#: ``bypass`` (``no_cache``: every input went upstream).
EmbeddingOutcome = Literal["hit", "miss", "partial", "coalesced", "bypass"]


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """An :class:`EmbeddingResponse` and how it was served: ``outcome``; ``hits``, the inputs
    answered from the store; ``coalesced``, those answered by another caller's call."""

    response: EmbeddingResponse
    outcome: EmbeddingOutcome
    hits: int
    coalesced: int


def _not_a_request(request: object) -> TypeError:
    return TypeError(f"request must be an EmbeddingRequest, not {type(request).__name__}")


#: An input waiting in a batch: its key, the input, whether its flight holds the lease, and
#: the future of its stored answer (and whether the write released the lease).
_Pending = tuple[str, EmbeddingInput, bool, "asyncio.Future[tuple[LLMResponse, bool]]"]


class _Batch:
    """The inputs of one request that go upstream together (see the module docstring).

    ``expected`` inputs register at once (their flights start without waiting on a lease);
    the call goes out when they are all in. Inputs registering later (after waiting on
    another process's lease in vain) go out on their own. The call is cancelled only when
    every input that registered for it has been abandoned.
    """

    def __init__(self, cache: EmbeddingCache, request: EmbeddingRequest, expected: int) -> None:
        self.cache = cache
        self.request = request
        self.expected = expected
        #: The upstream's response headers (request id, rate limits) of the last call.
        self.headers: tuple[tuple[str, str], ...] = ()
        self._pending: list[_Pending] = []
        self._registered: set[str] = set()

    async def fetch(self, flight: Flight, item: EmbeddingInput, holding: bool) -> bool:
        """Go upstream for ``flight``'s input (with the others) and publish its stored
        answer; True when the store write also released the lease."""
        future: asyncio.Future[tuple[LLMResponse, bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append((flight.key, item, holding, future))
        self._registered.add(flight.key)
        flight.set_origin("upstream")
        if len(self._pending) >= self.expected:
            self._send()
        response, released = await future
        flight.answered(response)
        return released

    def settled(self, key: str) -> None:
        """The flight of an input expected to register has ended: if it never registered
        (cancelled before it began), the others must not wait for it."""
        if key in self._registered or self.expected == 0:
            return
        self.expected -= 1
        if self._pending and len(self._pending) >= self.expected:
            self._send()

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        self.expected = 0  # later ones go on their own
        task = asyncio.ensure_future(self.cache._call(self, pending))
        waiting = [len(pending)]

        def abandoned(future: asyncio.Future[tuple[LLMResponse, bool]]) -> None:
            if future.cancelled():
                waiting[0] -= 1
                if waiting[0] == 0 and not task.done():
                    task.cancel()

        for *_, future in pending:
            future.add_done_callback(abandoned)


class EmbeddingCache:
    """Per-input embedding caching for one ``CachedProvider`` (see the module docstring):
    ``inner`` asked through ``store`` (fail-open, with leases), counted in ``counters``, in
    flight in ``flights`` (the cache's own table: keys never meet chat keys), entries expiring
    by ``config`` and stamped by ``clock``. ``is_fresh`` (None: every entry is) refuses
    entries past their ttl; ``get_now`` reads a memory store without awaiting."""

    def __init__(
        self,
        inner: LLMProvider,
        store: StoreAccess,
        counters: Counters,
        flights: Flights,
        config: LLMCacheConfig,
        clock: Callable[[], float],
        identity: Sequence[str],
        *,
        is_fresh: Callable[[CacheEntry], bool] | None = None,
        get_now: Callable[[str], CacheEntry | None] | None = None,
    ) -> None:
        self.inner = inner
        self.store = store
        self.counters = counters
        self.flights = flights
        self.config = config
        self.clock = clock
        self.identity = tuple(identity)
        self._is_fresh = is_fresh
        self._get_now = get_now

    # -- the request path -------------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """The vectors of ``request.inputs`` in their order, and how they were served."""
        if not isinstance(request, EmbeddingRequest):
            raise _not_a_request(request)
        request.validate(self.inner.limits)
        started = time.perf_counter()
        keys = embedding_keys(self.identity, request)
        items = dict(zip(keys, request.inputs, strict=True))  # unique keys, caller's order
        control = request.cache
        vectors: dict[str, tuple[float, ...]] = {}
        found, leased = await self._read_all(list(items), request, vectors)
        deadline = None
        if request.timeout is not None:
            deadline = asyncio.get_running_loop().time() + request.timeout
        # From here to boarding the flights: no await (a flight in flight still is).
        decisions: dict[str, Decision] = {}
        for key in items:
            stored = "unread" if control.no_cache else "fresh" if key in found else "absent"
            decision = decide(control, stored, self.flights.get(key) is not None)  # type: ignore[arg-type]
            if leased.get(key) == "acquired" and not decision.lease:
                self.store.drop_lease(key)  # an identical call started here while we read
                leased[key] = None
            decisions[key] = decision
        refused = [k for k, d in decisions.items() if d.action == "only_if_cached_miss"]
        if refused:
            for key, state in leased.items():
                if state == "acquired":
                    self.store.drop_lease(key)
            self.counters.only_if_cached_misses += 1
            raise CacheMiss(
                f"{len(refused)} of {len(items)} inputs have no cached vector (only-if-cached)"
            )
        flights, batch = self._board(request, items, decisions, leased)
        result = await self._gather(
            request, keys, found, vectors, decisions, flights, deadline, started
        )
        if batch.headers:
            result = dataclasses.replace(
                result, response=dataclasses.replace(result.response, headers=batch.headers)
            )
        return result

    async def _read_all(
        self, keys: list[str], request: EmbeddingRequest, vectors: dict[str, tuple[float, ...]]
    ) -> tuple[dict[str, LLMResponse], dict[str, LeaseStart | None]]:
        """The usable entries among ``keys`` (fresh, decodable; their decoded ``vectors``
        kept), and the leases taken while reading (an ``AtomicLeaseStore`` takes them for
        inputs that would lead)."""
        found: dict[str, LLMResponse] = {}
        leased: dict[str, LeaseStart | None] = {}
        if not reads_store(request.cache):
            return found, leased
        get_now = self._get_now
        if get_now is not None:
            entries = [get_now(key) for key in keys]
        else:
            leads = decide(request.cache, "absent", False).lease and self.store.atomic is not None
            reads = [
                self.store.read_taking_lease(key)
                if leads and self.flights.get(key) is None
                else self._plain_read(key)
                for key in keys
            ]
            results = await asyncio.gather(*reads)
            entries = []
            for key, (entry, state) in zip(keys, results, strict=True):
                entries.append(entry)
                if state is not None:
                    leased[key] = state
        for key, entry in zip(keys, entries, strict=True):
            if entry is None or (self._is_fresh is not None and not self._is_fresh(entry)):
                continue
            try:
                vectors[key] = entry_vector(entry.response)
            except ValueError:
                continue  # not an embedding entry: a miss, never a wrong vector
            found[key] = entry.response
        return found, leased

    async def _plain_read(self, key: str) -> tuple[CacheEntry | None, LeaseStart | None]:
        return await self.store.read(key), None

    def _board(
        self,
        request: EmbeddingRequest,
        items: dict[str, EmbeddingInput],
        decisions: dict[str, Decision],
        leased: dict[str, LeaseStart | None],
    ) -> tuple[dict[str, tuple[Flight, bool]], _Batch]:
        """Each input that is not a hit on a flight, as a member: ``(flight, joined)``; and
        the batch the leading ones go upstream in."""
        lease_store = self.store.lease_store
        going = [k for k, d in decisions.items() if d.action in ("lead", "bypass")]
        # Inputs that wait on nothing before they register with the batch.
        at_once = sum(
            1
            for k in going
            if not (decisions[k].lease and lease_store is not None) or leased.get(k) == "acquired"
        )
        batch = _Batch(self, request, at_once)
        flights: dict[str, tuple[Flight, bool]] = {}
        for key, decision in decisions.items():
            if decision.action == "hit":
                continue
            if decision.action == "join":
                joined = self.flights.get(key)
                assert joined is not None
                joined.join()
                flights[key] = (joined, True)
                continue
            flight = self.flights.start(
                key,
                lambda f, k=key, d=decision: self._fly(  # type: ignore[misc]
                    f, batch, items[k], d, leased.get(k)
                ),
                shared=decision.action == "lead",
            )
            flight.join()
            flights[key] = (flight, False)
            counted = not (decision.lease and lease_store is not None) or (
                leased.get(key) == "acquired"
            )
            if counted and flight.task is not None:
                flight.task.add_done_callback(lambda _t, k=key: batch.settled(k))  # type: ignore[misc]
        return flights, batch

    async def _fly(
        self,
        flight: Flight,
        batch: _Batch,
        item: EmbeddingInput,
        decision: Decision,
        leased: LeaseStart | None,
    ) -> None:
        """A flight's task: the lease (when the store has them), then the batch's call."""
        store = self.store
        lease_store = store.lease_store

        async def fetch(holding: bool) -> bool:
            return await batch.fetch(flight, item, holding)

        try:
            if decision.lease and lease_store is not None:
                atomic = store.atomic
                key = flight.key
                entry = await fetch_with_lease(
                    lease_store,
                    key,
                    store.owner,
                    store.policy,
                    read=store.read_fresh,
                    fetch=fetch,
                    on_error=store.failed,
                    read_or_lease=None if atomic is None else lambda: store.lease_attempt(key),
                    start=leased,
                )
                if entry is not None:  # another process answered while we waited
                    flight.set_origin("shared")
                    flight.answered(entry.response)
            else:
                await fetch(False)
        except asyncio.CancelledError:
            flight.end(LLMError("the upstream call was cancelled"))
            raise
        except Exception as exc:  # every member gets it (upstream failure, or a bug)
            flight.end(exc)
            return
        flight.end()

    async def _call(self, batch: _Batch, pending: list[_Pending]) -> None:
        """One upstream call for ``pending`` inputs; each vector stored, each waiter told."""
        request = batch.request
        futures = [future for *_, future in pending]
        try:
            sub = dataclasses.replace(request, inputs=tuple(item for _, item, _, _ in pending))
            self.counters.misses += len(pending)
            try:
                response = await self.inner.embed(sub)
            except Exception:
                self.counters.errors += 1
                raise
            batch.headers = response.headers
            self.counters.spend(response.usage)
            shares = token_shares(response.usage.prompt_tokens, [len(p[1]) for p in pending])
            stamp = self.clock()
            entries = [
                embedding_entry(embedding.vector, response.model, share, response.latency_ms, stamp)
                for embedding, share in zip(response.data, shares, strict=True)
            ]
            released: list[bool] = [False] * len(pending)
            if not request.cache.no_store:
                ttl, tti = store_expiry(self.config, request.cache)
                released = list(
                    await asyncio.gather(
                        *(
                            self.store.write(key, entry, ttl, tti, release=holding)
                            for (key, _, holding, _), entry in zip(pending, entries, strict=True)
                        )
                    )
                )
            for future, entry, done in zip(futures, entries, released, strict=True):
                if not future.done():
                    future.set_result((entry.response, done))
        except BaseException as exc:
            for future in futures:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _gather(
        self,
        request: EmbeddingRequest,
        keys: list[str],
        found: dict[str, LLMResponse],
        vectors: dict[str, tuple[float, ...]],
        decisions: dict[str, Decision],
        flights: dict[str, tuple[Flight, bool]],
        deadline: float | None,
        started: float,
    ) -> EmbeddingResult:
        """Wait for every flight, then answer in the caller's order and count."""
        answers: dict[str, LLMResponse] = dict(found)
        coalesced: set[str] = set()
        try:
            for key, (flight, joined) in flights.items():
                try:
                    answers[key] = await flight.result(deadline)
                except DeadlinePassed:
                    raise Timeout(f"no answer within {request.timeout:g} s") from None
                if joined or flight.origin == "shared":
                    coalesced.add(key)
        finally:
            for flight, _ in flights.values():
                flight.leave()
        counters = self.counters
        hits = len(found)
        counters.hits += hits
        counters.coalesced += len(coalesced)
        bypassed = sum(1 for d in decisions.values() if d.action == "bypass")
        counters.bypasses += bypassed
        saved = sum(answers[k].usage.prompt_tokens for k in (*found, *coalesced))
        counters.save(Usage(prompt_tokens=saved))
        sent = sum(answers[k].usage.prompt_tokens for k in flights if k not in coalesced)
        try:
            for key, answer in answers.items():
                if key not in vectors:  # the hits' were decoded when they were read
                    vectors[key] = entry_vector(answer)
        except ValueError as exc:  # another process stored something else under the key
            raise InvalidResponse(f"a shared cache entry is not a vector: {exc}") from None
        data = tuple(Embedding(i, vectors[key]) for i, key in enumerate(keys))
        led = [answers[k] for k in flights if k not in coalesced]
        model = (led or [answers[keys[0]]])[0].model
        response = EmbeddingResponse(
            data=data,
            model=model,
            usage=Usage(prompt_tokens=sent),
            latency_ms=(time.perf_counter() - started) * 1000,
            cached=sum(1 for k in keys if k in found),
            tokens_saved=saved,
        )
        outcome = _outcome(len(decisions), hits, len(coalesced), bypassed)
        return EmbeddingResult(response, outcome, hits, len(coalesced))


def _outcome(inputs: int, hits: int, coalesced: int, bypassed: int) -> EmbeddingOutcome:
    if bypassed:
        return "bypass"
    if hits == inputs:
        return "hit"
    if hits + coalesced == inputs:
        return "coalesced"
    if hits == 0 and coalesced == 0:
        return "miss"
    return "partial"
