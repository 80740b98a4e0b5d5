"""``FailoverQuota``: a shared limiter that never takes the proxy down with it.

When the shared store (Redis) fails or is slower than the breaker's ``timeout``, the
operation is answered by an in-process ``LocalQuota`` instead: requests keep flowing, each
process enforcing the limits on its own (so all together may allow up to one limit per
process) and counting spend that the shared totals will not see. The failure is counted
(``errors``) and logged once per outage, not once per request. A ``StoreCircuit`` (the
cache store's breaker, with the same policy) stops asking a dead store after ``failures``
failures in a row, and a background probe closes it again once the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vex_llm.cache.stores.breaker import StoreBreakerPolicy, StoreCircuit
from vex_llm.quota.local import LocalQuota
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits
from vex_llm.quota.redis import RedisQuota
from vex_llm.quota.standing import QuotaStoreError, Standing

__all__ = ["FailoverQuota"]

T = TypeVar("T")
log = logging.getLogger("vex_llm.quota")
_PROBE_TENANT = "vex-llm:probe"


class FailoverQuota:
    """``shared``, or ``local`` while ``shared`` fails (see the module docstring)."""

    def __init__(
        self,
        shared: RedisQuota,
        local: LocalQuota | None = None,
        policy: StoreBreakerPolicy | None = None,
    ) -> None:
        self.shared = shared
        self.local = local or LocalQuota()
        self.circuit = StoreCircuit(policy)
        self.policy = self.circuit.policy
        #: Operations answered in-process because the shared store failed or, its circuit
        #: open, was not asked.
        self.errors = 0
        self._failing = False
        self._probe: asyncio.Task[None] | None = None

    async def _either(
        self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if not self.circuit.allows():
            self.errors += 1
            self._start_probe()
            return await local()
        try:
            async with asyncio.timeout(self.policy.timeout):
                result = await shared()
        except (QuotaStoreError, TimeoutError) as exc:
            self.errors += 1
            self.circuit.record(False)
            if not self._failing:
                self._failing = True
                log.warning(
                    "rate limits: the shared store failed (%s); counting in this process "
                    "until it answers again (each process then enforces the limits alone)",
                    type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
                )
            return await local()
        self.circuit.record(True)
        if self._failing:
            self._failing = False
            log.info("rate limits: the shared store answers again")
        return result

    def _start_probe(self) -> None:
        if self.circuit.probe_due():
            self._probe = asyncio.get_running_loop().create_task(self._run_probe())

    async def _run_probe(self) -> None:
        try:
            async with asyncio.timeout(self.policy.timeout):
                await self.shared.peek(_PROBE_TENANT, Limits(), _probe_periods())
        except asyncio.CancelledError:
            self.circuit.probe_abandoned()
            raise
        except (QuotaStoreError, TimeoutError):
            self.circuit.record(False, probe=True)
            return
        if self.circuit.record(True, probe=True) == "closed":
            self._failing = False
            log.info("rate limits: the shared store answers again")

    async def admit(self, tenant: str, limits: Limits, tokens: int, periods: Periods) -> Standing:
        """The shared ``admit``, or the local one while the store fails."""
        return await self._either(
            lambda: self.shared.admit(tenant, limits, tokens, periods),
            lambda: self.local.admit(tenant, limits, tokens, periods),
        )

    async def settle(
        self, tenant: str, limits: Limits, tokens: int, nanos: int, periods: Periods
    ) -> Standing:
        """The shared ``settle``, or the local one while the store fails."""
        return await self._either(
            lambda: self.shared.settle(tenant, limits, tokens, nanos, periods),
            lambda: self.local.settle(tenant, limits, tokens, nanos, periods),
        )

    async def peek(self, tenant: str, limits: Limits, periods: Periods) -> Standing:
        """The shared ``peek``, or the local one while the store fails."""
        return await self._either(
            lambda: self.shared.peek(tenant, limits, periods),
            lambda: self.local.peek(tenant, limits, periods),
        )

    async def aclose(self) -> None:
        """Stop a probe in flight (the Redis client is the store's to close)."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


def _probe_periods() -> Periods:
    return Periods("probe", "probe", 1.0, 1.0)
