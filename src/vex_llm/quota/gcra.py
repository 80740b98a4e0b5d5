"""GCRA (the generic cell rate algorithm): a rate limit as pure arithmetic on one number.

A limit of ``limit`` units per ``period`` seconds keeps a single value per tenant, the
*theoretical arrival time* ``tat``: when the bucket would be full again if nothing more came.
Each unit moves it ``interval = period / limit`` into the future. Taking ``cost`` units at
``now`` is allowed when the new ``tat`` is at most ``period`` ahead of ``now``, so a full
limit can be spent at once (a burst) and then refills smoothly, one unit per interval. It is a
token bucket without a refill timer, and needs one read and one write, which is why the
Redis script (``quota.redis_scripts``) does the very same arithmetic atomically.

Everything here is a pure function of its arguments (the clock is the caller's): take (with
a cost, all or nothing), settle (a signed correction after the fact: a refund or a debt) and
peek. A cost larger than the whole limit is taken as the whole limit, once the bucket is
full: such a request would otherwise never fit (settling corrects the count afterwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Rate", "Verdict", "peek", "refunded", "settle", "take"]

#: Slack for float rounding (seconds): ``7 * (60 / 7)`` is not exactly 60.
_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units per ``period`` seconds (a positive whole number and seconds)."""

    limit: int
    period: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"a rate limit must be a whole number >= 1, got {self.limit!r}")
        if not (self.period > 0 and math.isfinite(self.period)):
            raise ValueError(f"a rate period must be positive seconds, got {self.period!r}")

    @property
    def interval(self) -> float:
        """Seconds one unit takes to come back."""
        return self.period / self.limit


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a take (or the state a peek sees).

    ``allowed``: the units were taken. ``remaining``: whole units that could be taken now.
    ``reset``: seconds until the bucket is full again (0 when it is). ``retry_after``:
    seconds until this take would be allowed (0 when it was).
    """

    allowed: bool
    remaining: int
    reset: float
    retry_after: float


def _remaining(rate: Rate, ahead: float) -> int:
    """Whole units free when ``tat`` is ``ahead`` seconds in the future."""
    units = math.floor((rate.period - ahead) / rate.interval + _EPSILON)
    return max(0, min(rate.limit, units))


def take(tat: float | None, now: float, rate: Rate, cost: int = 1) -> tuple[float | None, Verdict]:
    """Take ``cost`` units at ``now`` from the state ``tat`` (None: a full bucket).

    Returns the new state (unchanged when refused) and the verdict. ``cost`` is a whole
    number >= 0; above ``rate.limit`` it counts as ``rate.limit``.
    """
    base = now if tat is None or tat < now else tat
    new_tat = base + min(cost, rate.limit) * rate.interval
    allow_at = new_tat - rate.period
    if allow_at > now + _EPSILON:
        ahead = base - now
        return tat, Verdict(False, _remaining(rate, ahead), ahead, allow_at - now)
    ahead = new_tat - now
    return new_tat, Verdict(True, _remaining(rate, ahead), ahead, 0.0)


def settle(tat: float | None, now: float, rate: Rate, delta: int) -> tuple[float | None, Verdict]:
    """Correct the state by ``delta`` units taken (> 0: more were used than taken, which may
    leave the bucket in debt; < 0: a refund, never fuller than full). Always applied."""
    base = now if tat is None or tat < now else tat
    new_tat = base + delta * rate.interval
    if new_tat <= now:
        return None, Verdict(True, rate.limit, 0.0, 0.0)
    ahead = new_tat - now
    return new_tat, Verdict(True, _remaining(rate, ahead), ahead, 0.0)


def peek(tat: float | None, now: float, rate: Rate) -> Verdict:
    """The state at ``now`` without taking anything (``allowed``: one unit would be)."""
    ahead = 0.0 if tat is None or tat < now else tat - now
    remaining = _remaining(rate, ahead)
    wait = max(0.0, ahead + rate.interval - rate.period)
    return Verdict(wait <= _EPSILON, remaining, ahead, 0.0 if wait <= _EPSILON else wait)


def refunded(rate: Rate, verdict: Verdict, units: int) -> Verdict:
    """What ``verdict`` (a take's or a settle's) becomes once ``units`` >= 0 are given back at
    the same moment: the same arithmetic as :func:`settle`, on the verdict instead of the
    state, for headers written before the refund itself is made."""
    ahead = max(0.0, verdict.reset - units * rate.interval)
    return Verdict(True, _remaining(rate, ahead), ahead, 0.0)
