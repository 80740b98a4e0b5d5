"""``LocalQuota``: limits counted in this process (memory:// and SQLite stores).

Each operation runs without an await, so it is atomic on the event loop. Under
``vex-llm serve --workers N`` each worker counts on its own: a tenant may then get up to N
times its limits (each connection lands on one worker). Budgets are spent in memory and start
again at zero when the process restarts. A Redis or Valkey store shares both across every
process and machine (``quota.redis``). The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vex_llm.quota import gcra
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits
from vex_llm.quota.standing import Standing

__all__ = ["LocalQuota"]


@dataclass(slots=True)
class _Tenant:
    requests: float | None = None  # GCRA states (None: a full bucket)
    tokens: float | None = None
    day: str = ""
    day_spent: int = 0
    month: str = ""
    month_spent: int = 0

    def spent(self, periods: Periods) -> tuple[int, int]:
        if self.day != periods.day:
            self.day, self.day_spent = periods.day, 0
        if self.month != periods.month:
            self.month, self.month_spent = periods.month, 0
        return self.day_spent, self.month_spent


class LocalQuota:
    """Per-tenant GCRA states and spend, in memory; one entry per tenant asked about (the
    tenants are the configured ones, so the table is bounded by the config)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tenants: dict[str, _Tenant] = {}

    def _state(self, tenant: str) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant()
        return state

    async def admit(self, tenant: str, limits: Limits, tokens: int, periods: Periods) -> Standing:
        """Take a request, then reserve ``tokens`` unless it was refused or a budget is spent."""
        now = self._clock()
        state = self._state(tenant)
        day, month = state.spent(periods)
        requests = verdict = None
        if limits.requests is not None:
            state.requests, requests = gcra.take(state.requests, now, limits.requests)
        if limits.tokens is None:
            return Standing(requests, None, day, month)
        refused = requests is not None and not requests.allowed
        if refused or limits.over_budget(day, month) is not None:
            verdict = gcra.peek(state.tokens, now, limits.tokens)
            return Standing(requests, verdict, day, month)
        state.tokens, verdict = gcra.take(state.tokens, now, limits.tokens, tokens)
        return Standing(requests, verdict, day, month, reserved=verdict.allowed)

    async def settle(
        self, tenant: str, limits: Limits, tokens: int, nanos: int, periods: Periods
    ) -> Standing:
        """Correct the tokens by ``tokens`` and add ``nanos`` to the day and the month."""
        state = self._state(tenant)
        state.spent(periods)
        state.day_spent += nanos
        state.month_spent += nanos
        verdict = None
        if limits.tokens is not None:
            state.tokens, verdict = gcra.settle(state.tokens, self._clock(), limits.tokens, tokens)
        return Standing(None, verdict, state.day_spent, state.month_spent)

    async def peek(self, tenant: str, limits: Limits, periods: Periods) -> Standing:
        """The tenant's figures now."""
        now = self._clock()
        state = self._state(tenant)
        day, month = state.spent(periods)
        return Standing(
            None if limits.requests is None else gcra.peek(state.requests, now, limits.requests),
            None if limits.tokens is None else gcra.peek(state.tokens, now, limits.tokens),
            day,
            month,
        )
