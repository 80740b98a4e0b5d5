"""Single-flight: concurrent callers of the same key share one running call.

The shared call runs as its own task, so a caller that is cancelled stops waiting without
cancelling it for the others; only when every caller has gone is the call cancelled (nobody
wants its answer, and an LLM call costs money). A failure reaches every waiter, and the key
is forgotten the moment the call ends, so the next caller starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight(Generic[T]):
    """A table of in-flight calls by key."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call[T]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def in_flight(self, key: str) -> bool:
        """True while a call for ``key`` is running."""
        call = self._calls.get(key)
        return call is not None and not call.task.done()

    async def run(self, key: str, start: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, bool]:
        """Await the call for ``key``, starting it with ``start()`` if none is running.

        Returns ``(result, joined)``; ``joined`` is True when another caller started the call.
        """
        call = self._calls.get(key)
        joined = call is not None and not call.task.done()
        if call is None or not joined:
            call = _Call(asyncio.ensure_future(start()))
            self._calls[key] = call
            call.task.add_done_callback(lambda task, c=call: self._finished(key, c, task))  # type: ignore[misc]
        call.waiters += 1
        try:
            return await asyncio.shield(call.task), joined
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                # Every caller was cancelled: stop the work, and make sure no newcomer joins
                # a call that is being cancelled.
                self._forget(key, call)
                call.task.cancel()

    def _forget(self, key: str, call: _Call[T]) -> None:
        if self._calls.get(key) is call:
            del self._calls[key]

    def _finished(self, key: str, call: _Call[T], task: asyncio.Task[T]) -> None:
        self._forget(key, call)
        if not task.cancelled():
            # Mark the exception as retrieved: the waiters got it (or had all gone).
            task.exception()
