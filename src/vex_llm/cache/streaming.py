"""The stream side of the cache: what one stream caller reads, and the stream <-> answer rules.

A :class:`CachedStream` is one caller's view: the chunks of a stored entry (a hit, see
:func:`replay_chunks`), or those of a :class:`~vex_llm.cache.flight.Flight` in progress, read
from the first one however late the caller arrived, then live. It is given the flight, its
deadline and one callback, nothing of ``CachedProvider``: the decision of how a request is
served, the upstream call, the recording and the storing (after the terminal chunk, never for
a failed or abandoned stream) live in ``CachedProvider``. :func:`joined_response` turns a
finished stream into the answer ``complete()`` would have returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Self

from vex_llm.cache.assemble import assemble_response, response_chunks
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.flight import DeadlinePassed, Flight
from vex_llm.cache.outcome import CacheOutcome
from vex_llm.errors import Timeout
from vex_llm.models import Chunk, LLMResponse

__all__ = [
    "CachedStream",
    "entry_answer",
    "iterate",
    "joined_response",
    "replay_chunks",
]


def joined_response(
    chunks: list[Chunk] | tuple[Chunk, ...], model: str, latency_ms: float
) -> LLMResponse:
    """The whole answer a finished stream amounts to (what ``complete()`` would have returned)."""
    return assemble_response(chunks, model, latency_ms)


def entry_answer(entry: CacheEntry) -> LLMResponse:
    """The whole answer ``entry`` holds, as ``complete()`` returns it: its response, or for a
    recorded stream the answer its recording amounts to (the upstream's object as ``raw``)."""
    response = entry.response
    if entry.recording is None or response.raw is not None:  # raw: stored whole already
        return response
    chunks = entry.chunks
    assert chunks is not None
    whole = assemble_response(chunks, response.model, response.latency_ms)
    return dataclasses.replace(whole, cached=True, headers=())


def replay_chunks(entry: CacheEntry) -> tuple[Chunk, ...]:
    """The chunks a hit replays: the recorded ones, or the stored answer as a stream."""
    return entry.chunks or response_chunks(entry.response)


class CachedStream:
    """One caller's view of a cached stream: an async iterator of ``Chunk``.

    ``outcome`` says how it is served (``hit``, ``miss``, ``coalesced``, ``bypass``), ``key``
    is the cache key and ``age`` the stored entry's age in seconds (hits only). Iteration ends
    after the terminal chunk, once the answer is stored; an upstream failure is raised from
    iteration as its typed ``LLMError``. :meth:`aclose` detaches only this caller (the call is
    cancelled when its last member leaves before the end).

    ``deadline`` (event-loop time) bounds the wait for the flight's end: this request's own
    timeout, which a call started by another request does not know. ``on_final`` is called
    with the terminal chunk as it is read.
    """

    def __init__(
        self,
        outcome: CacheOutcome,
        key: str,
        *,
        replay: tuple[Chunk, ...] = (),
        flight: Flight | None = None,
        age: float | None = None,
        deadline: float | None = None,
        on_final: Callable[[Chunk], None] | None = None,
    ) -> None:
        self.outcome: CacheOutcome = outcome
        self.key = key
        self.age = age
        self._replay = replay
        self._flight = flight
        self._next = 0
        self._deadline = deadline
        self._on_final = on_final
        # The caller joined the flight before handing it over (no await in between).
        if flight is not None:
            flight.read_up_to(id(self), 0)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Chunk:
        flight = self._flight
        if flight is None:
            if self._next >= len(self._replay):
                raise StopAsyncIteration
            chunk = self._replay[self._next]
            self._next += 1
            return chunk
        while True:
            if self._next < flight.count:
                chunk = flight.chunk(self._next)
                self._next += 1
                flight.read_up_to(id(self), self._next)
                if chunk.is_final and self._on_final is not None:
                    self._on_final(chunk)
                return chunk
            if flight.finished:
                # After the terminal chunk this waited for the store write, so when iteration
                # ends the entry is there for the caller's next request.
                self._detach()
                if flight.error is not None:
                    raise flight.error
                raise StopAsyncIteration
            try:
                await flight.changed(self._deadline)
            except DeadlinePassed:
                self._detach()
                raise Timeout(
                    "the shared stream did not end within this request's timeout"
                ) from None

    def ready(self) -> bool:
        """True when the next step of iteration (a chunk, or the end) will not wait.

        A writer can gather every chunk already at hand into one write instead of one write
        per chunk; a replay is always at hand.
        """
        flight = self._flight
        if flight is None:
            return True
        return self._next < flight.count or flight.finished

    def _detach(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.leave(id(self))

    async def aclose(self) -> None:
        """Stop reading; the upstream is cancelled only when no member is left."""
        self._detach()
        self._replay = ()


async def iterate(stream: CachedStream) -> AsyncIterator[Chunk]:
    """Yield ``stream``'s chunks, detaching from it however the iteration ends."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()
