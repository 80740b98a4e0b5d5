"""A circuit breaker around a cache store, so a hung or dead store costs requests nothing.

Without it, every store call of every request waits out the store's own timeouts: a Redis
that is stopped (not dead: connections open, no answers) cost 8-12 s per request, forever.
``StoreCircuit`` is the decision, a state machine with an injected clock and no I/O:

    closed --(``failures`` consecutive failures or timeouts)--> open
    open --(``cooldown`` elapsed: one probe starts)--> half_open
    half_open --(probe succeeds)--> closed;  --(probe fails)--> open (cooldown restarts)

``BreakerStore`` is the I/O: it bounds each store call by ``timeout``, feeds the outcome to the
breaker, and while the circuit is not closed answers every call at once with ``StoreError``
(which the cache turns into a miss or a skipped write: requests go upstream). The probe runs in
the background, never on a request, so a request never waits for a store that is still
down. Only store failures (``STORE_FAILURES``) and timeouts count; a caller's cancellation or
a programming error does not.

Unlike the upstreams' breaker (``vex_llm.resilience``), which opens on a failure rate and lets
a request be its probe, this one opens on consecutive failures (a store works or it does not,
and earlier successes must not delay the decision) and probes off the request path: a
request that is the probe of a hung store would wait out the whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores.base import (
    STORE_FAILURES,
    AtomicLeaseStore,
    CacheStore,
    LeaseStore,
    StoreError,
)
from vex_llm.validation import flag, positive_int, positive_number

__all__ = [
    "AtomicLeaseBreakerStore",
    "BreakerState",
    "BreakerStore",
    "LeaseBreakerStore",
    "StoreBreakerPolicy",
    "StoreCircuit",
    "guard_store",
]

T = TypeVar("T")
log = logging.getLogger("vex_llm.cache")

BreakerState = Literal["closed", "open", "half_open"]

#: The key the background probe reads (a miss on any healthy store).
PROBE_KEY = "vex-llm:breaker-probe"


@dataclass(frozen=True, slots=True)
class StoreBreakerPolicy:
    """When the breaker opens and for how long (seconds).

    ``failures``: consecutive failed or timed-out store calls that open the circuit.
    ``cooldown``: how long the store is skipped before a background probe tries it again.
    ``timeout``: the longest a request waits for one store call (get, set, delete, leases);
    past it the call counts as a failure. ``admin_timeout`` bounds the calls that scan the
    whole store (count, total_bytes, clear, clear_tenant), which are legitimately slower on a
    big store.
    ``enabled=False``: no breaker (the store's own timeouts apply).
    """

    failures: int = 3
    cooldown: float = 5.0
    timeout: float = 1.0
    admin_timeout: float = 30.0
    enabled: bool = True

    def __post_init__(self) -> None:
        positive_int("breaker failures", self.failures)
        for name in ("cooldown", "timeout", "admin_timeout"):
            positive_number(f"breaker {name}", getattr(self, name))
        flag("breaker enabled", self.enabled)


class StoreCircuit:
    """The breaker's state and transitions; ``clock`` is monotonic seconds (injectable).

    The caller asks :meth:`allows` before a call and reports its outcome with :meth:`record`;
    when :meth:`probe_due` says so, it runs one probe and reports it with ``probe=True``.
    Outcomes of calls that started before the circuit opened are ignored while it is open.
    """

    def __init__(
        self, policy: StoreBreakerPolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or StoreBreakerPolicy()
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0  # consecutive, while closed
        self._opened_at = 0.0
        #: How many times the circuit opened (from closed; a failed probe is not a new open).
        self.opens = 0
        #: Calls answered without touching the store because the circuit was not closed.
        self.skipped = 0

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls go through), ``open`` (skipped), ``half_open`` (probing)."""
        return self._state

    def retry_in(self) -> float:
        """Seconds until the next probe may start (0 when closed or due)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.policy.cooldown - self._clock())

    def allows(self) -> bool:
        """Whether a call may use the store now; a refused call is counted as skipped."""
        if self._state == "closed":
            return True
        self.skipped += 1
        return False

    def probe_due(self) -> bool:
        """True once per cooldown while open: the caller must now run one probe."""
        if self._state != "open" or self._clock() < self._opened_at + self.policy.cooldown:
            return False
        self._state = "half_open"
        return True

    def record(self, ok: bool, *, probe: bool = False) -> BreakerState | None:
        """Report a call's outcome; returns the new state when this changed it."""
        if probe:
            if self._state != "half_open":
                return None
            return self._to("closed") if ok else self._to("open")
        if self._state != "closed":
            return None  # a call from before the circuit opened: the probe decides
        if ok:
            self._failures = 0
            return None
        self._failures += 1
        if self._failures >= self.policy.failures:
            self.opens += 1
            return self._to("open")
        return None

    def probe_abandoned(self) -> None:
        """The probe was cancelled (shutting down): open again, with a probe due at once."""
        if self._state == "half_open":
            self._state = "open"

    def _to(self, state: BreakerState) -> BreakerState:
        self._state = state
        self._failures = 0
        if state == "open":
            self._opened_at = self._clock()
        return state


class BreakerStore:
    """``store`` behind a :class:`StoreCircuit`: a store that fails fast.

    Use :func:`guard_store` to wrap a store (it keeps the ``LeaseStore`` ability). The wrapper
    owns nothing but its probe task: :meth:`aclose` closes the wrapped store, as the cache
    closes the store it was given.
    """

    def __init__(
        self,
        store: CacheStore,
        policy: StoreBreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(store, CacheStore):
            raise TypeError(f"store must be a CacheStore, not {type(store).__name__}")
        self.store = store
        self.breaker = StoreCircuit(policy, clock)
        self.policy = self.breaker.policy
        self._probe: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return repr(self.store)

    async def _call(self, what: str, op: Callable[[], Awaitable[T]], limit: float) -> T:
        breaker = self.breaker
        if not breaker.allows():
            self._start_probe()
            raise StoreError(
                f"cache store {self.store!r} skipped: its circuit is {breaker.state} after "
                f"{self.policy.failures} failures in a row (next probe in "
                f"{breaker.retry_in():.1f} s)"
            )
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                result = await op()
        except STORE_FAILURES as exc:  # TimeoutError is an OSError: ours, or the store's
            self._report(False)
            if isinstance(exc, TimeoutError) and deadline.expired():
                raise StoreError(
                    f"cache store {self.store!r}: {what} took longer than {limit:g} s"
                ) from None
            raise
        self._report(True)
        return result

    def _report(self, ok: bool) -> None:
        if self.breaker.record(ok) == "open":
            log.warning(
                "cache store %r failed %d times in a row: skipping it (requests go upstream), "
                "probing it every %g s",
                self.store,
                self.policy.failures,
                self.policy.cooldown,
            )

    def _start_probe(self) -> None:
        if not self.breaker.probe_due():
            return
        self._probe = asyncio.get_running_loop().create_task(self._run_probe())

    async def _run_probe(self) -> None:
        try:
            async with asyncio.timeout(self.policy.timeout):
                await self.store.get(PROBE_KEY)
        except asyncio.CancelledError:
            self.breaker.probe_abandoned()
            raise
        except STORE_FAILURES as exc:  # a timeout is an OSError
            self.breaker.record(False, probe=True)
            log.debug("cache store %r probe failed: %s", self.store, exc)
            return
        except BaseException:
            self.breaker.record(False, probe=True)
            raise
        if self.breaker.record(True, probe=True) == "closed":
            log.info("cache store %r answers again: circuit closed", self.store)

    # -- the CacheStore API ---------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        """The wrapped store's ``get``, or ``StoreError`` at once while the circuit is open."""
        return await self._call("get", lambda: self.store.get(key), self.policy.timeout)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        """The wrapped store's ``set``, bounded by the breaker."""
        return await self._call(
            "set", lambda: self.store.set(key, entry, ttl, tti), self.policy.timeout
        )

    async def delete(self, key: str) -> bool:
        """The wrapped store's ``delete``, bounded by the breaker."""
        return await self._call("delete", lambda: self.store.delete(key), self.policy.timeout)

    async def clear(self) -> None:
        """The wrapped store's ``clear``, bounded by ``admin_timeout``."""
        await self._call("clear", self.store.clear, self.policy.admin_timeout)

    async def clear_tenant(self, tenant: str | None) -> int:
        """The wrapped store's ``clear_tenant``, bounded by ``admin_timeout``."""
        return await self._call(
            "clear_tenant", lambda: self.store.clear_tenant(tenant), self.policy.admin_timeout
        )

    async def count(self) -> int:
        """The wrapped store's ``count``, bounded by ``admin_timeout``."""
        return await self._call("count", self.store.count, self.policy.admin_timeout)

    async def total_bytes(self) -> int:
        """The wrapped store's ``total_bytes``, bounded by ``admin_timeout``."""
        return await self._call("total_bytes", self.store.total_bytes, self.policy.admin_timeout)

    def evictions(self) -> Mapping[str, int]:
        """The wrapped store's eviction counts (no I/O)."""
        return self.store.evictions()

    async def aclose(self) -> None:
        """Stop probing and close the wrapped store. Idempotent."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        await self.store.aclose()


class LeaseBreakerStore(BreakerStore):
    """A :class:`BreakerStore` around a ``LeaseStore``: leases go through the breaker too."""

    store: LeaseStore  # type: ignore[assignment]

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """The wrapped store's ``acquire_lease``, bounded by the breaker."""
        return await self._call(
            "lease", lambda: self.store.acquire_lease(key, owner, ttl), self.policy.timeout
        )

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """The wrapped store's ``renew_lease``, bounded by the breaker."""
        return await self._call(
            "lease", lambda: self.store.renew_lease(key, owner, ttl), self.policy.timeout
        )

    async def release_lease(self, key: str, owner: str) -> None:
        """The wrapped store's ``release_lease``, bounded by the breaker."""
        await self._call("lease", lambda: self.store.release_lease(key, owner), self.policy.timeout)

    async def lease_held(self, key: str) -> bool:
        """The wrapped store's ``lease_held``, bounded by the breaker."""
        return await self._call("lease", lambda: self.store.lease_held(key), self.policy.timeout)


class AtomicLeaseBreakerStore(LeaseBreakerStore):
    """A :class:`LeaseBreakerStore` around an ``AtomicLeaseStore`` (SQLite, Redis): its
    read-or-lease and write-and-release go through the breaker too, so the proxy's misses
    keep costing two store operations."""

    store: AtomicLeaseStore

    async def get_or_lease(
        self, key: str, owner: str, ttl: float
    ) -> tuple[CacheEntry | None, bool]:
        """The wrapped store's ``get_or_lease``, bounded by the breaker."""
        return await self._call(
            "get", lambda: self.store.get_or_lease(key, owner, ttl), self.policy.timeout
        )

    async def set_and_release(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None, owner: str
    ) -> bool:
        """The wrapped store's ``set_and_release``, bounded by the breaker."""
        return await self._call(
            "set",
            lambda: self.store.set_and_release(key, entry, ttl, tti, owner),
            self.policy.timeout,
        )


def guard_store(
    store: CacheStore,
    policy: StoreBreakerPolicy | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> CacheStore:
    """``store`` behind a circuit breaker, keeping its ``LeaseStore`` ability.

    A ``MemoryStore`` is returned as it is (it cannot hang or fail, and the cache reads it
    without an await), and so is any store when ``policy.enabled`` is false.
    """
    from vex_llm.cache.stores.memory import MemoryStore

    policy = policy or StoreBreakerPolicy()
    if not policy.enabled or type(store) is MemoryStore or isinstance(store, BreakerStore):
        return store
    if isinstance(store, AtomicLeaseStore):
        return AtomicLeaseBreakerStore(store, policy, clock=clock)
    if isinstance(store, LeaseStore):
        return LeaseBreakerStore(store, policy, clock=clock)
    return BreakerStore(store, policy, clock=clock)
