"""``RollingCounts``: counters over the last ``window`` seconds, in a few fixed-size buckets.

The retry budget and the circuit breaker both ask "how many X in the last N seconds?". A
ring of buckets answers in constant memory (no per-event timestamps), at the price of a
resolution of ``window / buckets``. The clock is injected, so tests move time by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from vex_llm.validation import positive_int, positive_number

__all__ = ["RollingCounts"]


class RollingCounts:
    """``width`` named counters summed over the last ``window`` seconds of ``clock`` time."""

    def __init__(
        self, window: float, width: int, clock: Callable[[], float], *, buckets: int = 10
    ) -> None:
        positive_number("window", window)
        positive_int("buckets", buckets)
        positive_int("width", width)
        self.window = window
        self._clock = clock
        self._span = window / buckets
        self._slots = [[0] * width for _ in range(buckets)]
        # The bucket index (time // span) each slot last counted for: stale slots are reset.
        self._epochs = [-1] * buckets

    def _slot(self) -> list[int]:
        epoch = int(self._clock() // self._span)
        i = epoch % len(self._slots)
        if self._epochs[i] != epoch:
            self._epochs[i] = epoch
            slot = self._slots[i]
            for j in range(len(slot)):
                slot[j] = 0
        return self._slots[i]

    def add(self, index: int, n: int = 1) -> None:
        """Count ``n`` more of counter ``index`` now."""
        self._slot()[index] += n

    def totals(self) -> list[int]:
        """Each counter's sum over the window (the current, partial bucket included)."""
        self._slot()  # expire the current slot's previous round before reading
        oldest = int(self._clock() // self._span) - len(self._slots) + 1
        sums = [0] * len(self._slots[0])
        for epoch, slot in zip(self._epochs, self._slots, strict=True):
            if epoch >= oldest:
                for j, value in enumerate(slot):
                    sums[j] += value
        return sums

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._epochs = [-1] * len(self._epochs)
