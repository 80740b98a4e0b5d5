"""Cross-process single-flight: one process computes a missing entry, the others wait for it.

The in-process ``Flight`` already folds identical misses (JSON and streams) inside one process
into one call; this layer wraps starting that call, once per process and key, against a store
that implements ``LeaseStore`` (Redis, SQLite). The first process takes a short lease on the
key and renews it while its upstream call runs; the others poll the store with growing delays
until the value appears. A lease that is released without a value (the call failed) or that
runs out (its holder died) lets the next process take over, and nobody waits longer than
``max_wait``: then it goes upstream itself. Timing decisions are pure functions of the
policy; the I/O loop takes its clock and sleep as arguments so tests can drive it.

The holder renews from a separate task, which is stopped by a flag as well as cancelled, and
every wait on it (and on the release) is bounded: a store client that swallows cancellation
(redis-py can, inside its own timeout handling) must not leave a renewer running forever nor
hold the request that owned it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores.base import STORE_FAILURES, LeaseStore
from vex_llm.validation import positive_number, seconds

__all__ = [
    "LeasePolicy",
    "LeaseStart",
    "bounded",
    "fetch_with_lease",
    "poll_delay",
    "renew_interval",
    "waited_too_long",
]


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """Timing of cross-process single-flight (seconds).

    ``ttl``: a lease's life without renewal, so how long a dead holder can block others.
    ``max_wait``: the longest a process waits for another's answer before asking upstream
    itself. Polls start at ``first_poll`` and grow by ``factor`` up to ``max_poll``.
    ``enabled=False`` turns the layer off (each process then makes its own call).
    """

    ttl: float = 5.0
    max_wait: float = 60.0
    first_poll: float = 0.005
    max_poll: float = 0.2
    factor: float = 1.5
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("ttl", "first_poll", "max_poll"):
            object.__setattr__(
                self, name, seconds(f"lease {name}", getattr(self, name), optional=False)
            )
        object.__setattr__(
            self, "max_wait", seconds("lease max_wait", self.max_wait, optional=False, zero=True)
        )
        object.__setattr__(self, "factor", positive_number("lease factor", self.factor))
        if self.max_poll < self.first_poll or self.factor < 1:
            raise ValueError("lease max_poll must be >= first_poll and factor >= 1")


def renew_interval(policy: LeasePolicy) -> float:
    """How often a holder renews: three chances before the lease would run out."""
    return policy.ttl / 3


def poll_delay(policy: LeasePolicy, attempt: int, jitter: float) -> float:
    """The wait before poll ``attempt`` (0-based); ``jitter`` in [0, 1) spreads pollers ±25%."""
    base = min(policy.max_poll, policy.first_poll * policy.factor ** min(attempt, 64))
    return base * (0.75 + 0.5 * jitter)


def waited_too_long(policy: LeasePolicy, started: float, now: float) -> bool:
    """True once a waiter has waited ``max_wait``: it should go upstream itself."""
    return now - started >= policy.max_wait


class _Renewer:
    """Renews a held lease every ``renew_interval`` until told to stop (or the lease is lost)."""

    def __init__(
        self,
        store: LeaseStore,
        key: str,
        owner: str,
        policy: LeasePolicy,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.stopped = False
        self._args = (store, key, owner, policy, on_error)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        store, key, owner, policy, on_error = self._args
        while not self.stopped:
            await asyncio.sleep(renew_interval(policy))
            if self.stopped:
                return
            try:
                done, renewed = await bounded(store.renew_lease(key, owner, policy.ttl), policy.ttl)
            except STORE_FAILURES as exc:
                on_error(exc)
                return
            if not done:
                on_error(TimeoutError(f"renewing a cache lease took over {policy.ttl:g} s"))
                return
            if not renewed:
                return  # lost it (we stalled past the ttl); the call goes on regardless

    async def stop(self, within: float) -> None:
        """Stop renewing; wait at most ``within`` seconds for the task to end."""
        self.stopped = True
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=within)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a late failure of an abandoned operation is not worth a warning


async def bounded(operation: Coroutine[Any, Any, Any], within: float) -> tuple[bool, Any]:
    """Run ``operation`` for at most ``within`` seconds: ``(finished, result)``.

    Unlike ``asyncio.timeout``, this returns on time even when the operation swallows its
    cancellation: it then runs on, abandoned, in its own task. Its exception is raised.
    """
    task = asyncio.ensure_future(operation)
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        return False, None
    return True, task.result()


#: What the caller's own read found, when it took the lease in the same operation
#: (``AtomicLeaseStore.get_or_lease``): the lease is ours, or somebody else holds it.
LeaseStart = Literal["acquired", "held"]


async def fetch_with_lease(
    store: LeaseStore,
    key: str,
    owner: str,
    policy: LeasePolicy,
    *,
    read: Callable[[str], Awaitable[CacheEntry | None]],
    fetch: Callable[[bool], Awaitable[bool]],
    on_error: Callable[[BaseException], None],
    read_or_lease: Callable[[], Awaitable[tuple[CacheEntry | None, bool]]] | None = None,
    start: LeaseStart | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CacheEntry | None:
    """Run ``fetch`` for ``key`` in one process at a time, or take another process's answer.

    Returns the entry another process stored (``fetch`` was not run), or None once this
    process ran ``fetch`` (which stores its own answer). ``fetch(holding)`` is told whether it
    runs under the lease, and returns True when it released the lease itself (with its write,
    ``AtomicLeaseStore.set_and_release``). ``read`` is the cache's fail-open store read;
    ``on_error`` is told about store failures, after which this process stops coordinating
    and fetches itself (fail-open).

    With an ``AtomicLeaseStore``, ``read_or_lease`` is its ``get_or_lease`` for this key
    (raising store failures): each attempt is then one store operation, not three; ``start``
    is what the caller's own ``get_or_lease`` found, so the first attempt is not repeated.
    """
    started = clock()
    attempt = 0
    state: LeaseStart | None = start
    while True:
        if state is None:
            try:
                if read_or_lease is not None:
                    entry, acquired = await read_or_lease()
                    if entry is not None:
                        return entry
                    state = "acquired" if acquired else "held"
                elif await store.acquire_lease(key, owner, policy.ttl):
                    return await _fetch_holding(
                        store, key, owner, policy, read, fetch, on_error, reread=True
                    )
            except STORE_FAILURES as exc:
                on_error(exc)
                await fetch(False)
                return None
        if state == "acquired":
            # Taken together with a read that found nothing: no second look needed.
            return await _fetch_holding(
                store, key, owner, policy, read, fetch, on_error, reread=False
            )
        if state is None:  # a plain LeaseStore, lease held: is the answer there yet?
            entry = await read(key)
            if entry is not None:
                return entry
        if waited_too_long(policy, started, clock()):
            await fetch(False)
            return None
        if state is None:
            try:
                held = await store.lease_held(key)
            except STORE_FAILURES as exc:
                on_error(exc)
                await fetch(False)
                return None
            if not held:
                continue  # no holder and no value: it failed or died; take over
        await sleep(poll_delay(policy, attempt, random.random()))
        attempt += 1
        state = None


async def _fetch_holding(
    store: LeaseStore,
    key: str,
    owner: str,
    policy: LeasePolicy,
    read: Callable[[str], Awaitable[CacheEntry | None]],
    fetch: Callable[[bool], Awaitable[bool]],
    on_error: Callable[[BaseException], None],
    *,
    reread: bool,
) -> CacheEntry | None:
    renewer: _Renewer | None = None
    released = False
    try:
        if reread:
            # The previous holder may have stored the answer and released just before we
            # took the lease: look once more before paying for a call.
            entry = await read(key)
            if entry is not None:
                return entry
        renewer = _Renewer(store, key, owner, policy, on_error)
        released = await fetch(True)
        return None
    finally:
        if renewer is not None:
            await renewer.stop(within=policy.ttl)
        if not released:
            try:
                done, _ = await bounded(store.release_lease(key, owner), policy.ttl)
                if not done:
                    on_error(TimeoutError(f"releasing a cache lease took over {policy.ttl:g} s"))
            except STORE_FAILURES as exc:
                on_error(exc)  # it runs out on its own within ttl
