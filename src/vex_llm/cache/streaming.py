"""Stream caching: record a stream while passing it on, replay it, and share it while it runs.

A miss starts the upstream stream in its own task (a :class:`Broadcast`) that records every
chunk; each caller reads it through a :class:`CachedStream`, which yields the recorded chunks
from the start and then follows live ones. An identical request arriving meanwhile attaches
to the same broadcast, so the upstream is called once. Because the upstream runs in its own
task, a subscriber that disconnects or is cancelled leaves the others untouched; when the last
one leaves before the terminal chunk, the upstream is cancelled and nothing is stored. Only a
stream that reached its terminal chunk is stored (with its chunks, for replay); a failed one
hands its error to every subscriber and is forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Self

from vex_llm.cache.assemble import assemble_response, response_chunks
from vex_llm.cache.entry import CacheEntry
from vex_llm.errors import CacheMiss, InvalidResponse, LLMError, Timeout
from vex_llm.models import Chunk, LLMRequest, LLMResponse

if TYPE_CHECKING:
    from vex_llm.cache.provider import CachedProvider, CacheOutcome

__all__ = ["Broadcast", "CachedStream", "StreamCache", "joined_response", "replay_chunks"]


def joined_response(
    chunks: list[Chunk] | tuple[Chunk, ...], model: str, latency_ms: float
) -> LLMResponse:
    """The whole answer a finished stream amounts to (what ``complete()`` would have returned)."""
    return assemble_response(chunks, model, latency_ms)


def replay_chunks(entry: CacheEntry) -> tuple[Chunk, ...]:
    """The chunks a hit replays: the recorded ones, or the stored answer as a stream."""
    return entry.chunks or response_chunks(entry.response)


class Broadcast:
    """One upstream stream in its own task, recorded, with any number of subscribers."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        #: True once the terminal chunk arrived: from then on the stream is complete.
        self.complete = False
        #: True once the task is over (stored, failed or cancelled).
        self.finished = False
        self.error: BaseException | None = None
        self.subscribers = 0
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def publish(self, chunk: Chunk) -> None:
        """Record ``chunk`` and wake the subscribers."""
        self.chunks.append(chunk)
        if chunk.is_final:
            self.complete = True
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        """Mark the broadcast over, with the error every subscriber will get (if any)."""
        self.error = error
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        # A fresh event per change: waiters hold the old one, which stays set.
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next chunk or the end."""
        await self._changed.wait()


class CachedStream:
    """One caller's view of a cached stream: an async iterator of ``Chunk``.

    ``outcome`` says how it is served (``hit``, ``miss``, ``coalesced``, ``bypass``), ``key``
    is the cache key and ``age`` the stored entry's age in seconds (hits only). Iteration ends
    after the terminal chunk; an upstream failure is raised from iteration as its typed
    ``LLMError``. :meth:`aclose` detaches only this subscriber.
    """

    def __init__(
        self,
        outcome: CacheOutcome,
        key: str,
        *,
        replay: tuple[Chunk, ...] = (),
        broadcast: Broadcast | None = None,
        age: float | None = None,
        cache: StreamCache | None = None,
        deadline: float | None = None,
    ) -> None:
        self.outcome: CacheOutcome = outcome
        self.key = key
        self.age = age
        self._replay = replay
        self._broadcast = broadcast
        self._next = 0
        self._cache = cache
        self._attached = broadcast is not None
        # Event-loop time by which an attached stream must be over: its own request's
        # timeout, which the shared upstream (started by another request) does not know.
        self._deadline = deadline
        if broadcast is not None:
            broadcast.subscribers += 1

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Chunk:
        broadcast = self._broadcast
        if broadcast is None:
            if self._next >= len(self._replay):
                raise StopAsyncIteration
            chunk = self._replay[self._next]
            self._next += 1
            return chunk
        while True:
            if self._next < len(broadcast.chunks):
                chunk = broadcast.chunks[self._next]
                self._next += 1
                if chunk.is_final and self.outcome == "coalesced" and self._cache is not None:
                    self._cache.coalesced_answer(chunk)
                return chunk
            if broadcast.finished:
                # After the terminal chunk this waited for the store write, so when iteration
                # ends the entry is there for the caller's next request.
                self._detach()
                if broadcast.error is not None:
                    raise broadcast.error
                raise StopAsyncIteration
            if self._deadline is None:
                await broadcast.changed()
                continue
            try:
                async with asyncio.timeout_at(self._deadline):
                    await broadcast.changed()
            except TimeoutError:
                self._detach()
                self._broadcast = None
                raise Timeout(
                    "the shared stream did not end within this request's timeout"
                ) from None

    def ready(self) -> bool:
        """True when the next step of iteration (a chunk, or the end) will not wait.

        A writer can gather every chunk already at hand into one write instead of one write
        per chunk; a replay is always at hand.
        """
        broadcast = self._broadcast
        if broadcast is None:
            return True
        return self._next < len(broadcast.chunks) or broadcast.finished

    def _detach(self) -> None:
        if self._attached and self._broadcast is not None:
            self._attached = False
            self._broadcast.subscribers -= 1
            if self._cache is not None:
                self._cache.left(self.key, self._broadcast)

    async def aclose(self) -> None:
        """Stop reading; the upstream is cancelled only when no subscriber is left."""
        self._detach()
        self._replay = ()
        self._broadcast = None


class StreamCache:
    """The streaming side of a ``CachedProvider``: hits, in-flight broadcasts, recording."""

    def __init__(self, cached: CachedProvider) -> None:
        self._cached = cached
        self._live: dict[str, Broadcast] = {}

    def __len__(self) -> int:
        return len(self._live)

    async def open(self, request: LLMRequest) -> CachedStream:
        """Decide how ``request`` is served and return the stream (see ``open_stream``)."""
        cached = self._cached
        if not isinstance(request, LLMRequest):
            raise TypeError(f"request must be an LLMRequest, not {type(request).__name__}")
        request.validate(cached.limits)
        key = cached.key_for(request)
        control = request.cache
        counters = cached._counters
        if control.no_cache:
            counters.bypasses += 1
            broadcast = self._start(request, key, shared=False)
            return CachedStream("bypass", key, broadcast=broadcast, cache=self)
        entry = await cached._read(key)
        if entry is not None:
            counters.hits += 1
            counters.tokens_saved += entry.response.usage.total_tokens
            age = max(0.0, cached._clock() - entry.stored_at)
            return CachedStream("hit", key, replay=replay_chunks(entry), age=age)
        if control.only_if_cached:
            counters.only_if_cached_misses += 1
            raise CacheMiss(f"no cached answer for this request (key {key[:16]}...)")
        # No await between this check and the registration below: no duplicate upstream.
        live = self._live.get(key)
        if live is not None and not live.finished:
            counters.coalesced += 1
            deadline = None
            if request.timeout is not None:
                deadline = asyncio.get_running_loop().time() + request.timeout
            return CachedStream("coalesced", key, broadcast=live, cache=self, deadline=deadline)
        counters.misses += 1
        broadcast = self._start(request, key, shared=True)
        return CachedStream("miss", key, broadcast=broadcast, cache=self)

    def coalesced_answer(self, final: Chunk) -> None:
        """Account a coalesced subscriber's answer as tokens saved."""
        if final.usage is not None:
            self._cached._counters.tokens_saved += final.usage.total_tokens

    def left(self, key: str, broadcast: Broadcast) -> None:
        """A subscriber left; with none left before the end, cancel the upstream."""
        if broadcast.subscribers > 0 or broadcast.complete or broadcast.finished:
            return
        if self._live.get(key) is broadcast:
            del self._live[key]  # nobody may attach to a stream being cancelled
        if broadcast.task is not None:
            broadcast.task.cancel()

    def _start(self, request: LLMRequest, key: str, *, shared: bool) -> Broadcast:
        broadcast = Broadcast()
        if shared:
            self._live[key] = broadcast
        broadcast.task = asyncio.ensure_future(self._run(request, key, broadcast, shared))
        return broadcast

    async def _run(self, request: LLMRequest, key: str, broadcast: Broadcast, shared: bool) -> None:
        cached = self._cached
        started = time.perf_counter()
        upstream = cached.inner.stream(request)
        try:
            try:
                async for chunk in upstream:
                    broadcast.publish(chunk)
                    if chunk.is_final:
                        break
            finally:
                aclose = getattr(upstream, "aclose", None)
                if aclose is not None:
                    await aclose()
            if not broadcast.complete:
                raise InvalidResponse(f"{cached.inner.name()} stream ended without a final chunk")
        except asyncio.CancelledError:
            self._forget(key, broadcast, shared)
            broadcast.end(LLMError("the upstream stream was cancelled"))
            raise
        except Exception as exc:
            cached._counters.errors += 1
            self._forget(key, broadcast, shared)
            broadcast.end(exc)
            return
        try:
            if not request.cache.no_store:
                latency = (time.perf_counter() - started) * 1000
                model = request.model or cached.inner.name()
                response = joined_response(broadcast.chunks, model, latency)
                await cached._store_answer(key, request, response, chunks=tuple(broadcast.chunks))
        except Exception:
            # The answer reached every subscriber; failing to keep it must not fail them.
            cached._counters.store_errors += 1
        finally:
            self._forget(key, broadcast, shared)
            broadcast.end()

    def _forget(self, key: str, broadcast: Broadcast, shared: bool) -> None:
        if shared and self._live.get(key) is broadcast:
            del self._live[key]


async def iterate(stream: CachedStream) -> AsyncIterator[Chunk]:
    """Yield ``stream``'s chunks, detaching from it however the iteration ends."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()
