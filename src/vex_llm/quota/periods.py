"""The budget periods a moment falls in: its UTC day and UTC month. Pure.

Budgets reset at midnight UTC (daily) and on the first of the month, midnight UTC (monthly),
whatever the time zone of the machines: every proxy sharing a Redis counts into the same
period keys. Period labels come from the caller's wall clock, so machines whose clocks
disagree by a few seconds attribute the spend of those seconds around midnight to
neighbouring periods; nothing else depends on the clocks agreeing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["Periods", "periods_at"]


@dataclass(frozen=True, slots=True)
class Periods:
    """The day and month labels of a moment (``2026-11-29``, ``2026-11``) and the seconds
    left in each."""

    day: str
    month: str
    day_left: float
    month_left: float


def periods_at(epoch_seconds: float) -> Periods:
    """The UTC day and month of ``epoch_seconds`` (Unix time)."""
    now = dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = midnight + dt.timedelta(days=1)
    first = midnight.replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    return Periods(
        day=now.strftime("%Y-%m-%d"),
        month=now.strftime("%Y-%m"),
        day_left=(tomorrow - now).total_seconds(),
        month_left=(next_month - now).total_seconds(),
    )
