"""``UpstreamCalls``: carrying out the decisions that go upstream, one flight per key.

A leader starts a :class:`~vex_llm.cache.flight.Flight` whose task takes the cross-process
lease when the store has them (``lease.fetch_with_lease``), calls the wrapped provider
(``complete()`` for a JSON leader, ``stream()`` for a stream leader, recording the chunks),
publishes the answer to every member and stores it unless ``no_store``; a joiner becomes a
member of the flight in progress. Upstream failures are counted in ``errors`` and reach every
member; bugs too, never as ``store_errors``. Which requests lead or join is decided in
``decision``; the accounting per caller is ``CachedProvider``'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from vex_llm.cache.access import StoreAccess
from vex_llm.cache.assemble import typed_response
from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.decision import Decision
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.flight import Flight, Flights
from vex_llm.cache.lease import LeaseStart, fetch_with_lease
from vex_llm.cache.staleness import store_expiry
from vex_llm.cache.stats import Counters
from vex_llm.cache.streaming import (
    entry_answer,
    joined_response,
    replay_chunks,
)
from vex_llm.errors import InvalidResponse, LLMError
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider

__all__ = ["UpstreamCalls"]


def _publish_replay(flight: Flight, response: LLMResponse) -> None:
    """Publish ``response`` to ``flight`` as the chunks of a stream replaying it."""
    for chunk in replay_chunks(CacheEntry(response, 0.0)):
        flight.publish(chunk)


class UpstreamCalls:
    """The flights of one cache: ``inner`` called through ``store`` (fail-open, with leases),
    counted in ``counters``, entries expiring by ``config``, stamped by ``clock``."""

    def __init__(
        self,
        inner: LLMProvider,
        store: StoreAccess,
        counters: Counters,
        config: LLMCacheConfig,
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.store = store
        self.counters = counters
        self.config = config
        self.clock = clock
        self.flights = Flights()

    def board(
        self,
        request: LLMRequest,
        key: str,
        decision: Decision,
        leased: LeaseStart | None,
        *,
        streamed: bool,
    ) -> tuple[Flight, bool]:
        """The flight this caller rides, as a member: ``(flight, joined another's)``.

        No await between the decision and this: a flight that was in flight still is.
        ``leased``: what the caller's read found of the lease (``read_taking_lease``).
        """
        if decision.action == "join":
            joined = self.flights.get(key)
            assert joined is not None
            joined.join(waits=not streamed)
            if streamed and joined.response is not None and joined.count == 0:
                _publish_replay(joined, joined.response)  # answered as JSON before we came
            return joined, True
        flight = self.flights.start(
            key,
            lambda f: self._fly(f, request, key, decision, leased, streamed),
            shared=decision.action == "lead",
            # An answer larger than the whole cache can never be stored: past that, a stream
            # is relayed without being kept (no_store answers are never kept either).
            limit=0 if not decision.store else self.config.max_bytes,
        )
        flight.join(waits=not streamed)
        if not (decision.lease and self.store.lease_store is not None):
            flight.set_origin("upstream")  # no lease to wait for
        return flight, False

    async def _fly(
        self,
        flight: Flight,
        request: LLMRequest,
        key: str,
        decision: Decision,
        leased: LeaseStart | None,
        streamed: bool,
    ) -> None:
        """The flight's task: the lease (when the store has them), the call, the store write."""
        try:
            store = self.store
            if decision.lease and store.lease_store is not None:
                entry = await fetch_with_lease(
                    store.lease_store,
                    key,
                    store.owner,
                    store.policy,
                    read=store.read_fresh,
                    fetch=lambda holding: self._call(
                        flight, request, key, decision, streamed, holding
                    ),
                    on_error=store.failed,
                    read_or_lease=None
                    if store.atomic is None
                    else lambda: store.lease_attempt(key),
                    start=leased,
                )
                if entry is not None:  # another process answered while we waited
                    flight.set_origin("shared")
                    for chunk in replay_chunks(entry):
                        flight.publish(chunk)
                    flight.answered(entry.response, lambda: entry_answer(entry))
            else:
                await self._call(flight, request, key, decision, streamed)
        except asyncio.CancelledError:
            flight.end(LLMError("the upstream call was cancelled"))
            raise
        except Exception as exc:  # every member gets it (upstream failure, or a bug)
            flight.end(exc)
            return
        flight.end()

    async def _call(
        self,
        flight: Flight,
        request: LLMRequest,
        key: str,
        decision: Decision,
        streamed: bool,
        holding: bool = False,
    ) -> bool:
        """Call upstream for ``flight`` and store the answer; True if that write also released
        the lease this call runs under (``holding``)."""
        flight.set_origin("upstream")
        if decision.action == "lead":
            self.counters.misses += 1
        started = time.perf_counter()
        try:
            if streamed:
                await self._relay(flight, request)
                # The readers' turn first: they pass the terminal chunk on (a proxy ends its
                # response) before this task assembles and stores the answer. Two turns: one
                # for the readers, queued ahead of this task when the chunk woke them, one for
                # what they queued in theirs (the proxy's transport sends a step's writes at
                # the step's end); both queues are first in, first out.
                for _ in range(2):
                    await asyncio.sleep(0)
            else:
                response = await self.inner.complete(request)
        except Exception:
            self.counters.errors += 1
            raise
        chunks: tuple[Chunk, ...] | None = None
        if streamed:
            recorded = chunks = tuple(flight.chunks)  # whole unless unrecorded (never stored)
            model = request.model or self.inner.name()
            latency_ms = (time.perf_counter() - started) * 1000
            # Typed fields now (the usage is counted, the entry keeps them with the recording);
            # the upstream's whole object only if a JSON member asks for it, and later from
            # the recording (streaming.entry_answer): a miss does not parse every event twice.
            response = typed_response(recorded, model, latency_ms)
            flight.answered(response, lambda: joined_response(recorded, model, latency_ms))
        elif flight.members > flight.waiters:
            # Stream members of a JSON-led flight get the answer as a replay: made only when
            # one is there (or comes before the flight ends: ``board``), not on every miss.
            _publish_replay(flight, response)
        if not streamed:
            flight.answered(response)
        self.counters.spend(response.usage)
        if not decision.store or flight.unrecorded:
            return False
        # The size is the entry's persisted (JSON) size, the same figure for every store.
        entry = CacheEntry.of(response, self.clock(), chunks)
        if streamed:
            # A stream's client has its answer before this write is over (a JSON caller's
            # has not) and may ask again meanwhile: that is answered from this entry
            # (Flights.writing), as it will be from the store.
            flight.entry = entry
        return await self._write(key, request, entry, holding)

    async def _relay(self, flight: Flight, request: LLMRequest) -> None:
        """Pass the upstream stream's chunks to the flight, up to the terminal one."""
        upstream = self.inner.stream(request)
        terminal = False
        try:
            async for chunk in upstream:
                flight.publish(chunk)
                if chunk.is_final:
                    terminal = True
                    break
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not terminal:
            raise InvalidResponse(f"{self.inner.name()} stream ended without a final chunk")

    async def _write(self, key: str, request: LLMRequest, entry: CacheEntry, release: bool) -> bool:
        """Store ``entry`` for ``request``'s expiry; True when the write also released this
        cache's lease on ``key`` (``release``: it holds it)."""
        ttl, tti = store_expiry(self.config, request.cache)
        return await self.store.write(key, entry, ttl, tti, release=release)
