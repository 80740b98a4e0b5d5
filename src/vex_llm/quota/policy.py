"""What a tenant may use: ``TenantQuota`` (the configured numbers) and ``Limits`` (as counted).

A quota has four optional parts, each None when not limited: requests per minute, tokens per
minute (prompt + completion), and dollars per UTC day and per UTC month spent on upstream
calls. ``Limits`` is the same quota in the units the limiters count in: GCRA rates and
whole nanodollars (integers add up exactly; a float sum of many small prices does not).
Pure values, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vex_llm.quota.gcra import Rate

__all__ = ["NANOS_PER_USD", "QUOTA_FIELDS", "Limits", "TenantQuota", "nanos"]

#: Nanodollars in a dollar: what budgets are counted in.
NANOS_PER_USD = 1_000_000_000
#: The quota settings, as the config file spells them.
QUOTA_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "daily_budget_usd",
    "monthly_budget_usd",
)
_MINUTE = 60.0


def nanos(usd: float) -> int:
    """``usd`` dollars as whole nanodollars (rounded up: a spend is never undercounted)."""
    return math.ceil(usd * NANOS_PER_USD - 1e-6)


@dataclass(frozen=True, slots=True)
class TenantQuota:
    """One tenant's limits; None for a part that is not limited.

    ``requests_per_minute`` and ``tokens_per_minute`` are whole numbers >= 1; the budgets
    are dollars >= 0 (0: no upstream call at all, answers from the cache only).
    """

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None

    def problems(self) -> list[tuple[str, str]]:
        """``(setting, message)`` for every part that is out of range."""
        found = []
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                found.append((name, f"must be a whole number >= 1 (or false), got {value!r}"))
        for name in ("daily_budget_usd", "monthly_budget_usd"):
            value = getattr(self, name)
            if value is None:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0:
                found.append((name, f"must be dollars >= 0 (or false), got {value!r}"))
        return found

    @property
    def limited(self) -> bool:
        """True when any part is limited."""
        return any(getattr(self, name) is not None for name in QUOTA_FIELDS)

    def limits(self) -> Limits:
        """The quota as the limiters count it."""
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        daily, monthly = self.daily_budget_usd, self.monthly_budget_usd
        return Limits(
            requests=None if rpm is None else Rate(rpm, _MINUTE),
            tokens=None if tpm is None else Rate(tpm, _MINUTE),
            daily=None if daily is None else nanos(daily),
            monthly=None if monthly is None else nanos(monthly),
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """A quota in counting units: rates per minute, budgets in nanodollars (None: none)."""

    requests: Rate | None = None
    tokens: Rate | None = None
    daily: int | None = None
    monthly: int | None = None

    @property
    def has_budget(self) -> bool:
        """True when a daily or monthly budget applies."""
        return self.daily is not None or self.monthly is not None

    def over_budget(self, daily_spent: int, monthly_spent: int) -> str | None:
        """``"daily"`` or ``"monthly"`` when that budget is spent (daily first), else None."""
        if self.daily is not None and daily_spent >= self.daily:
            return "daily"
        if self.monthly is not None and monthly_spent >= self.monthly:
            return "monthly"
        return None
