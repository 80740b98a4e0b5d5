"""The in-flight unit: one upstream call per key, serving JSON waiters and stream subscribers.

A :class:`Flight` runs its call in its own task and records what it produces: the chunks of a
streamed answer as they come (a subscriber that arrives late reads the earlier ones first),
then the whole response. A ``complete()`` caller waits for the response, a ``stream()``
caller reads the chunks; both may share one flight, whichever of them started it, so an
identical JSON request and stream request in flight together make one upstream call.

Because the call runs in its own task, a member that is cancelled or leaves stops waiting
without cancelling it for the others; when the last member leaves before the answer is
complete, the call is cancelled (nobody wants it, and an LLM call costs money) and no newcomer
may join it. A failure reaches every member. :class:`Flights` is the table by key; a flight
leaves it the moment it ends, so the next caller starts afresh.

This module knows nothing of stores or leases: what the task does is the cache's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from vex_llm.cache.entry import CacheEntry
from vex_llm.errors import LLMError
from vex_llm.models import Chunk, LLMResponse

__all__ = ["DeadlinePassed", "Flight", "Flights", "Origin"]

#: Where a flight's answer comes from, once known: an upstream call this flight makes, or an
#: answer another process stored while this one waited on its lease.
Origin = Literal["upstream", "shared"]


class DeadlinePassed(Exception):
    """A member's own deadline passed while it waited (the caller raises its ``Timeout``;
    a ``Timeout`` raised by the call itself is the call's error, passed on as it is)."""


class Flight:
    """One call in flight for ``key``: its recorded chunks, its answer, its members."""

    __slots__ = (
        "_changed",
        "_waiting",
        "_whole",
        "base",
        "chunks",
        "complete",
        "entry",
        "error",
        "finished",
        "key",
        "limit",
        "members",
        "on_abandoned",
        "origin",
        "readers",
        "recorded",
        "response",
        "task",
        "unrecorded",
        "waiters",
    )

    def __init__(self, key: str, limit: int | None = None) -> None:
        self.key = key
        #: Chunks so far, in order (a JSON-led flight publishes its answer's chunks at the end);
        #: ``chunks[0]`` is chunk number ``base`` (see ``unrecorded``).
        self.chunks: list[Chunk] = []
        self.base = 0
        #: How many bytes a recording may reach and still be stored (None: no bound), and the
        #: estimate so far. Past it the answer can never be stored, so it is not recorded:
        #: ``unrecorded``, no newcomer may join (it could not be given the start), and chunks
        #: every reader has passed are let go — the stream is relayed, not kept.
        self.limit = limit
        self.recorded = 0
        self.unrecorded = False
        #: Each stream reader's next chunk number (by id), and the JSON members waiting for
        #: the whole answer (who need every chunk kept).
        self.readers: dict[int, int] = {}
        self.waiters = 0
        #: True once the terminal chunk (or the whole answer) is in: it will not be cancelled.
        self.complete = False
        #: True once the call is over (answered and stored, failed or cancelled).
        self.finished = False
        self.response: LLMResponse | None = None
        self.error: BaseException | None = None
        self.origin: Origin | None = None
        #: Callers waiting on or reading this flight.
        self.members = 0
        self.task: asyncio.Task[None] | None = None
        self.on_abandoned: Callable[[Flight], None] | None = None
        self._changed = asyncio.Event()
        self._waiting = 0  # members waiting in changed() on ``_changed``
        # The entry a stream's call is writing to the store (see :meth:`Flights.writing`).
        self.entry: CacheEntry | None = None
        self._whole: Callable[[], LLMResponse] | None = None  # see answered()

    # -- the producer side (the task) -------------------------------------------------------

    def set_origin(self, origin: Origin) -> None:
        """Say where the answer comes from (a stream leader reports it as its outcome)."""
        self.origin = origin
        self._wake()

    def publish(self, chunk: Chunk) -> None:
        """Record ``chunk`` and wake the members."""
        self.chunks.append(chunk)
        if self.limit is not None:
            # Roughly its encoded size: the text, the upstream's event, the fields around.
            self.recorded += len(chunk.delta) + len(chunk.raw or "") + 48
            if self.recorded > self.limit:
                self.unrecorded = True
            if self.unrecorded:
                self._let_go()
        if chunk.is_final:
            self.complete = True
        self._wake()

    @property
    def count(self) -> int:
        """How many chunks were published (kept or let go)."""
        return self.base + len(self.chunks)

    def chunk(self, number: int) -> Chunk:
        """Chunk ``number`` (one no reader has passed yet)."""
        return self.chunks[number - self.base]

    def read_up_to(self, reader: int, number: int) -> None:
        """Reader ``reader`` will read chunk ``number`` next."""
        self.readers[reader] = number

    def _let_go(self) -> None:
        if self.waiters:
            return  # a JSON member needs the whole answer assembled
        passed = min(self.readers.values(), default=self.count)
        drop = passed - self.base
        if drop > 0:
            del self.chunks[:drop]
            self.base = passed

    def answered(
        self, response: LLMResponse, whole: Callable[[], LLMResponse] | None = None
    ) -> None:
        """The answer is known (it may still be being stored). ``whole``, when given, makes
        the whole answer from ``response`` in typed fields, for the JSON members: a stream's
        answer is assembled only when one of them asks (:meth:`result`)."""
        self.response = response
        self._whole = whole
        self.complete = True
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        """The call is over, with the error every member gets (if any)."""
        if error is not None:
            self.error = error
            self.response = None
        self.finished = True
        self._wake()

    def _wake(self) -> None:
        # A fresh event per change that someone waits for: waiters hold the old one, which
        # stays set. With nobody waiting (a leader publishing a burst of chunks before its
        # readers run) the event is left as it is, not replaced per chunk.
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()

    # -- the member side --------------------------------------------------------------------

    def join(self, waits: bool = False) -> None:
        """Count one more member (``waits``: a JSON member, which needs the whole answer)."""
        self.members += 1
        self.waiters += waits

    def leave(self, reader: int | None = None) -> None:
        """Count one member less; with none left before the answer is complete, cancel."""
        self.members -= 1
        if reader is not None:
            self.readers.pop(reader, None)
        if self.members > 0 or self.complete or self.finished:
            return
        if self.on_abandoned is not None:
            self.on_abandoned(self)  # nobody may join a flight being cancelled
        if self.task is not None:
            self.task.cancel()

    async def changed(self, deadline: float | None = None) -> None:
        """Wait for the next change (a chunk, the origin, the answer, the end).

        ``deadline`` (event-loop time) bounds the wait: a member's own request timeout, which
        a call started by another request does not know. Past it: :class:`DeadlinePassed`.
        """
        self._waiting += 1
        try:
            if deadline is None:
                await self._changed.wait()
                return
            try:
                async with asyncio.timeout_at(deadline):
                    await self._changed.wait()
            except TimeoutError:
                raise DeadlinePassed from None
        finally:
            self._waiting -= 1

    async def result(self, deadline: float | None = None) -> LLMResponse:
        """The answer once stored (or the call's error), for a JSON member."""
        while not self.finished:
            await self.changed(deadline)
        if self.error is not None:
            raise self.error
        if self._whole is not None:
            self.response, self._whole = self._whole(), None
        assert self.response is not None
        return self.response

    async def known_origin(self, deadline: float | None = None) -> Origin:
        """Where the answer comes from, once decided (or the call's error, if it failed first)."""
        while self.origin is None:
            if self.finished:
                assert self.error is not None
                raise self.error
            await self.changed(deadline)
        return self.origin


class Flights:
    """The flights in progress, by key (only shared ones: a ``no_cache`` call is private)."""

    def __init__(self) -> None:
        self._live: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._live)

    def get(self, key: str) -> Flight | None:
        """The flight for ``key`` that a newcomer may join (one not over yet), or None."""
        flight = self._live.get(key)
        return None if flight is None or flight.finished or flight.unrecorded else flight

    def writing(self, key: str) -> CacheEntry | None:
        """The entry a stream's flight for ``key`` is writing to the store, until the write
        is over.

        A stream's response ends at its terminal chunk, before the answer is stored: the
        client's next identical request can arrive while the write is still under way (a
        SQLite or Redis store), and must find the answer as it would once stored (a hit,
        an ``only_if_cached`` answer), not join the finished call as ``coalesced`` or miss.
        """
        flight = self._live.get(key)
        return None if flight is None or flight.finished else flight.entry

    def start(
        self,
        key: str,
        run: Callable[[Flight], Coroutine[Any, Any, None]],
        *,
        shared: bool,
        limit: int | None = None,
    ) -> Flight:
        """A new flight for ``key`` running ``run(flight)`` in its own task; ``shared``
        flights are listed for others to join until they end. ``limit``: the recording's
        bound (see :class:`Flight`)."""
        flight = Flight(key, limit)
        if shared:
            self._live[key] = flight
            flight.on_abandoned = self._forget
        task = asyncio.ensure_future(run(flight))
        flight.task = task
        task.add_done_callback(lambda _, f=flight: self._done(f))  # type: ignore[misc]
        return flight

    def _forget(self, flight: Flight) -> None:
        if self._live.get(flight.key) is flight:
            del self._live[flight.key]

    def _done(self, flight: Flight) -> None:
        self._forget(flight)
        if not flight.finished:
            # The task ended without saying so (cancelled before it began): members must not
            # wait forever.
            flight.end(LLMError("the upstream call was cancelled"))
