"""Cross-process single-flight: one process computes a missing entry, the others wait for it.

In-process ``SingleFlight`` already folds identical misses inside one process into one call;
this layer runs beneath it, once per process and key, against a store that implements
``LeaseStore`` (Redis, SQLite). The first process takes a short lease on the key and renews
it while its upstream call runs; the others poll the store with growing delays until the
value appears. A lease that is released without a value (the call failed) or that runs out
(its holder died) lets the next process take over, and nobody waits longer than
``max_wait``: then it goes upstream itself. Timing decisions are pure functions of the
policy; the I/O loop takes its clock and sleep as arguments so tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores.base import STORE_FAILURES, LeaseStore
from vex_llm.models import LLMResponse

__all__ = ["LeasePolicy", "fetch_with_lease", "poll_delay", "renew_interval", "waited_too_long"]


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
        if not (self.ttl > 0 and self.max_wait >= 0 and self.first_poll > 0):
            raise ValueError("lease ttl and first_poll must be > 0, max_wait >= 0")
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


async def _renew_forever(
    store: LeaseStore,
    key: str,
    owner: str,
    policy: LeasePolicy,
    on_error: Callable[[BaseException], None],
) -> None:
    while True:
        await asyncio.sleep(renew_interval(policy))
        try:
            if not await store.renew_lease(key, owner, policy.ttl):
                return  # lost it (we stalled past the ttl); the call goes on regardless
        except STORE_FAILURES as exc:
            on_error(exc)
            return


async def fetch_with_lease(
    store: LeaseStore,
    key: str,
    owner: str,
    policy: LeasePolicy,
    *,
    read: Callable[[str], Awaitable[CacheEntry | None]],
    fetch: Callable[[], Awaitable[LLMResponse]],
    on_error: Callable[[BaseException], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[LLMResponse, bool]:
    """Answer a miss for ``key`` once across processes: ``(response, from_another_process)``.

    ``read`` is the cache's fail-open store read, ``fetch`` the upstream call that stores
    its answer before returning; ``on_error`` is told about store failures, after which this
    process stops coordinating and fetches itself (fail-open).
    """
    started = clock()
    attempt = 0
    while True:
        try:
            acquired = await store.acquire_lease(key, owner, policy.ttl)
        except STORE_FAILURES as exc:
            on_error(exc)
            return await fetch(), False
        if acquired:
            return await _fetch_holding(store, key, owner, policy, read, fetch, on_error)
        entry = await read(key)
        if entry is not None:
            return entry.response, True
        if waited_too_long(policy, started, clock()):
            return await fetch(), False
        try:
            held = await store.lease_held(key)
        except STORE_FAILURES as exc:
            on_error(exc)
            return await fetch(), False
        if held:
            await sleep(poll_delay(policy, attempt, random.random()))
            attempt += 1
        # Not held and no value: the holder failed or died; loop round and take over.


async def _fetch_holding(
    store: LeaseStore,
    key: str,
    owner: str,
    policy: LeasePolicy,
    read: Callable[[str], Awaitable[CacheEntry | None]],
    fetch: Callable[[], Awaitable[LLMResponse]],
    on_error: Callable[[BaseException], None],
) -> tuple[LLMResponse, bool]:
    renewer: asyncio.Task[None] | None = None
    try:
        # The previous holder may have stored the answer and released just before we took
        # the lease: look once more before paying for a call.
        entry = await read(key)
        if entry is not None:
            return entry.response, True
        renewer = asyncio.create_task(_renew_forever(store, key, owner, policy, on_error))
        return await fetch(), False
    finally:
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        try:
            await store.release_lease(key, owner)
        except STORE_FAILURES as exc:
            on_error(exc)  # it runs out on its own within ttl
