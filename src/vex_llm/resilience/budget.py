"""``RetryBudget``: retries may add at most a set fraction of the recent requests.

Envoy's and Finagle's answer to retry storms: every request deposits ``ratio`` of a retry,
every retry withdraws one, over a rolling ``window``; a small reserve of
``min_per_second`` retries keeps a quiet service able to retry at all. When a backend fails
hard, each request is then retried at most ``ratio`` times on average instead of up to
``max_attempts - 1`` times, so retries never multiply an outage. Pure state with an
injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vex_llm.resilience.window import RollingCounts
from vex_llm.validation import positive_number

__all__ = ["RetryBudget"]

_REQUESTS, _RETRIES = 0, 1


class RetryBudget:
    """Allows a retry while ``retries < ratio * requests + min_per_second * window``.

    Both counts cover the last ``window`` seconds. ``ratio=0.2`` is Finagle's default
    ("retries add at most 20% load").
    """

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        positive_number("ratio", ratio, zero=True)
        positive_number("min_per_second", min_per_second, zero=True)
        self.ratio = ratio
        self.min_per_second = min_per_second
        self._counts = RollingCounts(window, 2, clock)

    @property
    def window(self) -> float:
        """The rolling window, in seconds."""
        return self._counts.window

    def record_request(self) -> None:
        """Count one original request (a deposit of ``ratio`` retries)."""
        self._counts.add(_REQUESTS)

    def available(self) -> float:
        """How many retries may be taken right now (may be fractional; < 1 means none)."""
        requests, retries = self._counts.totals()
        return self.ratio * requests + self.min_per_second * self.window - retries

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is exhausted."""
        if self.available() < 1:
            return False
        self._counts.add(_RETRIES)
        return True
