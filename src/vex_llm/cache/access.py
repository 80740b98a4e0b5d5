"""``StoreAccess``: the cache's one way to its store (reads, writes, leases), fail-open.

``CachedProvider`` never touches its store on the request path except through this. A store
failure (``STORE_FAILURES``) becomes a miss, a skipped write or a fetch without coordination:
it is counted in ``store_errors`` and logged once per incident (``incidents``), and it never
fails a request; anything else is a bug and is raised. With an ``AtomicLeaseStore`` the
lease rides on the read and on the write, so a miss costs two store operations.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.incidents import StoreIncidents
from vex_llm.cache.lease import LeasePolicy, LeaseStart, bounded
from vex_llm.cache.stats import Counters
from vex_llm.cache.stores.base import STORE_FAILURES, AtomicLeaseStore, CacheStore, LeaseStore

__all__ = ["StoreAccess"]


class StoreAccess:
    """Fail-open access to ``store`` for one cache, with its ``counters`` and lease ``policy``.

    ``is_fresh`` (None: every entry read is fresh) tells a stale entry, kept past its ttl for
    stale-if-error, from an answer: a leader waiting on a lease must not take it as one.
    """

    def __init__(
        self,
        store: CacheStore,
        counters: Counters,
        policy: LeasePolicy,
        *,
        is_fresh: Callable[[CacheEntry], bool] | None = None,
    ) -> None:
        self.store = store
        self.counters = counters
        self.policy = policy
        #: The store as a ``LeaseStore`` when it arbitrates across processes (else None).
        self.lease_store = store if policy.enabled and isinstance(store, LeaseStore) else None
        #: ... and as an ``AtomicLeaseStore`` when it reads-or-leases in one operation.
        self.atomic = self.lease_store if isinstance(self.lease_store, AtomicLeaseStore) else None
        #: This cache's name on the leases it takes (one per cache, shared by its flights).
        self.owner = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.incidents = StoreIncidents(store)
        self._is_fresh = is_fresh
        # Lease releases running on their own (see drop_lease); kept so they are not collected.
        self._background: set[asyncio.Task[None]] = set()

    # -- reads ------------------------------------------------------------------------------

    async def read(self, key: str) -> CacheEntry | None:
        """The entry for ``key``; a failing store reads as a miss."""
        try:
            entry = await self.store.get(key)
        except STORE_FAILURES as exc:
            self.failed(exc, "read")
            return None
        self.incidents.succeeded("read")
        return entry

    async def read_fresh(self, key: str) -> CacheEntry | None:
        """:meth:`read`, where a stale entry reads as none."""
        entry = await self.read(key)
        if entry is None or self._is_fresh is None or self._is_fresh(entry):
            return entry
        return None

    async def read_taking_lease(self, key: str) -> tuple[CacheEntry | None, LeaseStart | None]:
        """Read ``key`` and, on a miss, take the lease in the same operation (only with an
        ``AtomicLeaseStore``): ``(entry, None)``, or ``(None, "acquired" | "held")``. A
        failing store reads as a miss with no lease taken: ``(None, None)``."""
        if self.atomic is None:
            return await self.read(key), None
        try:
            entry, acquired = await self.atomic.get_or_lease(key, self.owner, self.policy.ttl)
        except STORE_FAILURES as exc:
            self.failed(exc, "read")
            return None, None
        self.incidents.succeeded("read")
        if entry is not None:
            return entry, None
        return None, "acquired" if acquired else "held"

    async def lease_attempt(self, key: str) -> tuple[CacheEntry | None, bool]:
        """One attempt of a leader's lease loop on an ``AtomicLeaseStore`` (store failures
        are raised to it): a fresh entry, or whether the lease was taken. A stale entry is
        no answer: the lease is then taken the plain way."""
        assert self.atomic is not None
        entry, acquired = await self.atomic.get_or_lease(key, self.owner, self.policy.ttl)
        if entry is not None and self._is_fresh is not None and not self._is_fresh(entry):
            return None, await self.atomic.acquire_lease(key, self.owner, self.policy.ttl)
        return entry, acquired

    # -- writes and leases ------------------------------------------------------------------

    async def write(
        self,
        key: str,
        entry: CacheEntry,
        ttl: float | None,
        tti: float | None,
        *,
        release: bool = False,
    ) -> bool:
        """Store ``entry``; a failing store skips the write. With ``release`` (this cache
        holds the lease on ``key``) an ``AtomicLeaseStore`` gives the lease back in the same
        operation: returns True when it did."""
        atomic = self.atomic if release else None
        try:
            if atomic is not None:
                await atomic.set_and_release(key, entry, ttl, tti, self.owner)
            else:
                await self.store.set(key, entry, ttl, tti)
        except STORE_FAILURES as exc:
            self.failed(exc, "write")
            return False
        self.incidents.succeeded("write")
        return atomic is not None

    def drop_lease(self, key: str) -> None:
        """Give back, in the background, a lease taken by a read whose caller will not use it."""
        store = self.lease_store
        assert store is not None

        async def release() -> None:
            try:
                await bounded(store.release_lease(key, self.owner), self.policy.ttl)
            except STORE_FAILURES as exc:
                self.failed(exc)

        task = asyncio.ensure_future(release())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def failed(self, exc: BaseException, kind: str = "write") -> None:
        """Count and log a store failure that was survived. (Lease operations are the
        default kind: they write, and a write follows each of them.)"""
        self.counters.store_errors += 1
        self.incidents.failed(exc, kind)

    async def settle(self) -> None:
        """Wait (at most one lease ttl) for background lease releases."""
        if self._background:
            await asyncio.wait(self._background, timeout=self.policy.ttl)
