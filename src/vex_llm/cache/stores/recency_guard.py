"""``RecencyGuard``: would plain LRU have hit more often than the policy, lately?

W-TinyLFU bets on frequency. On a recency-heavy workload (a working set that changes every
few thousand requests) that bet loses until its window grows to the working set, and a hill
climber that moves in small steps on a noisy hit ratio gets there slowly: a step that would
pay off lies hundreds of entries away, with nothing to gain in between. The guard measures
the alternative directly: a shadow LRU of the same size, kept for a spatial sample of the
keys (those whose hash has its low bits zero, as SHARDS samples reuse distances), whose hit
ratio estimates what LRU would reach on the whole cache. Every ``period`` sampled accesses it
compares that with the policy's own hits on the same keys; the gap, when LRU leads by more
than noise, is how far the owner should grow its recency window. The guard keeps keys only,
never values, and costs a hash test per access (the sampled ones one ``OrderedDict`` step).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecencyGuard"]


class RecencyGuard:
    """A sampled shadow LRU of ``entries`` entries, scored against the policy it guards.

    Call :meth:`access` for every access with whether the policy hit; it returns, once per
    period, LRU's lead over the policy (a share of the period's sampled accesses, 0 when the
    policy did as well), and None in between.
    """

    __slots__ = (
        "_capacity",
        "_lru",
        "_lru_hits",
        "_margin",
        "_mask",
        "_own_hits",
        "_period",
        "_seen",
    )

    #: Sampled keys to keep at least (a smaller sample is too noisy to act on).
    SHADOW = 256
    #: LRU must lead by this share of a period's sampled accesses before the guard speaks.
    MARGIN = 0.05

    def __init__(self, entries: int) -> None:
        if entries < 1:
            raise ValueError("entries must be positive")
        rate = 1
        while entries // (rate * 2) >= self.SHADOW:
            rate *= 2
        self._mask = rate - 1
        self._capacity = max(1, entries // rate)
        self._period = self._capacity
        self._margin = max(4.0, self.MARGIN * self._period)
        self._lru: OrderedDict[str, None] = OrderedDict()
        self._seen = self._lru_hits = self._own_hits = 0

    @property
    def sampling(self) -> int:
        """One key in ``sampling`` is tracked (a power of two)."""
        return self._mask + 1

    @property
    def mask(self) -> int:
        """``hash(key) & mask == 0`` for the sampled keys (what :meth:`sampled` tests)."""
        return self._mask

    def sampled(self, key: str) -> bool:
        """Whether ``key`` belongs to the tracked sample."""
        return hash(key) & self._mask == 0

    def access(self, key: str, hit: bool, count: int = 1) -> float | None:
        """``count`` accesses of a sampled ``key`` in a row, ``hit`` by the policy.

        Returns LRU's lead at the end of a period, else None. Callers test :meth:`sampled`
        first (the common, unsampled case then costs nothing more).
        """
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            self._lru_hits += count
        else:
            lru[key] = None
            self._lru_hits += count - 1
            if len(lru) > self._capacity:
                lru.popitem(last=False)
        if hit:
            self._own_hits += count
        elif count > 1:
            self._own_hits += count - 1
        self._seen += count
        ahead = self._lru_hits - self._own_hits
        if ahead < self._margin and self._seen < self._period:
            return None
        lead = ahead / self._seen
        self._seen = self._lru_hits = self._own_hits = 0
        return lead if ahead >= self._margin else 0.0

    def clear(self) -> None:
        """Forget the shadow's keys and the running period."""
        self._lru.clear()
        self._seen = self._lru_hits = self._own_hits = 0
