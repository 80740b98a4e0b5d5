"""What a limiter answers: ``Standing``, and ``QuotaBackend``, the contract limiters keep.

A backend keeps, per tenant, the GCRA state of its request and token limits and what it
spent in the current UTC day and month, and offers three operations, each atomic for one
tenant (in-process: no await inside; Redis: one script):

- ``admit``: take one request; if that is allowed and no budget is spent, reserve the
  estimated tokens (all or nothing; else only peek at them); read what was spent.
- ``settle``: correct the tokens by a signed delta (real usage minus the reservation) and
  add the dollars the call cost.
- ``peek``: the same figures, changing nothing (for ``/v1/cache/stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vex_llm.quota.gcra import Verdict
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits

__all__ = ["QuotaBackend", "QuotaStoreError", "Standing"]


class QuotaStoreError(Exception):
    """The shared store of a limiter failed (the gate then counts in-process meanwhile)."""


@dataclass(frozen=True, slots=True)
class Standing:
    """A tenant's state after an operation.

    ``requests``/``tokens``: the verdicts of the limited parts (None when not limited).
    ``reserved``: ``admit`` took the tokens (when the request was refused or a budget is
    spent, ``tokens`` is only a peek). ``daily_spent``/``monthly_spent``: nanodollars spent
    in the current periods.
    """

    requests: Verdict | None = None
    tokens: Verdict | None = None
    daily_spent: int = 0
    monthly_spent: int = 0
    reserved: bool = False


class QuotaBackend(Protocol):
    """Where limits are counted: one process (``LocalQuota``) or a shared Redis."""

    async def admit(self, tenant: str, limits: Limits, tokens: int, periods: Periods) -> Standing:
        """Take a request and reserve ``tokens`` (see the module docstring)."""
        ...

    async def settle(
        self, tenant: str, limits: Limits, tokens: int, nanos: int, periods: Periods
    ) -> Standing:
        """Correct the tokens by ``tokens`` (signed) and add ``nanos`` spent."""
        ...

    async def peek(self, tenant: str, limits: Limits, periods: Periods) -> Standing:
        """The tenant's figures now; nothing changes."""
        ...
