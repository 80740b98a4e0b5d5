"""``RecencyGuard``: would plain LRU be hitting more often than the policy, right now?

W-TinyLFU bets on frequency. On a recency-heavy workload (a working set that changes every
few thousand requests) that bet loses until its window grows to the working set, and a hill
climber that moves in small steps on a noisy hit ratio gets there slowly: a step that would
pay off lies hundreds of entries away, with nothing to gain in between. The guard measures
the alternative directly: a shadow LRU of the same size, kept for a spatial sample of the
keys (those whose hash has its low bits zero, as SHARDS samples reuse distances). Of the
sampled accesses where the two disagree (one hits, the other misses), it counts who won;
as soon as LRU's lead is significant (three standard deviations of a fair coin), it reports
LRU's lead as a share of the accesses seen, which is how far the owner should grow its
recency window. A period without a significant lead reports 0. The guard keeps keys only,
never values, and costs a hash test per access (the sampled ones one ``OrderedDict`` step).
Measured on benchmarks/hit_ratio.py's bursty trace: it turns about 3 400 extra misses at the
first phase change (window grown by the climber and ghost nudges) into about 150.
"""

from __future__ import annotations

from collections import OrderedDict

from vex_llm.validation import positive_int

__all__ = ["RecencyGuard"]


class RecencyGuard:
    """A sampled shadow LRU of ``entries`` entries, scored against the policy it guards.

    Call :meth:`access` for every sampled access with whether the policy hit; it returns
    LRU's lead over the policy (a share of the sampled accesses since the last report) when
    the lead became significant, 0.0 at the end of a period without one, else None.
    """

    __slots__ = (
        "_capacity",
        "_losses",
        "_lru",
        "_mask",
        "_period",
        "_seen",
        "_wins",
    )

    #: Sampled keys to keep at least (a smaller sample is too noisy to act on).
    SHADOW = 256
    #: The guard speaks when LRU won at least LEAST more of the accesses where the two
    #: disagreed than the policy did, and the lead is significant: lead^2 >= Z2 x disagreements
    #: (three standard deviations of a fair coin).
    LEAST = 4
    Z2 = 9.0

    def __init__(self, entries: int) -> None:
        positive_int("entries", entries)
        rate = 1
        while entries // (rate * 2) >= self.SHADOW:
            rate *= 2
        self._mask = rate - 1
        self._capacity = max(1, entries // rate)
        self._period = self._capacity
        self._lru: OrderedDict[str, None] = OrderedDict()
        self._seen = self._wins = self._losses = 0

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

        Returns LRU's lead once it is significant, 0.0 when a period ends without one, else
        None. Callers test :meth:`sampled` first (an unsampled key costs nothing more).
        """
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            if not hit:
                self._wins += 1
        else:
            lru[key] = None
            if len(lru) > self._capacity:
                lru.popitem(last=False)
            if hit:
                self._losses += 1
        # Later accesses of a run hit in both (the key was just used): no disagreement.
        self._seen += count
        ahead = self._wins - self._losses
        if ahead >= self.LEAST and ahead * ahead >= self.Z2 * (self._wins + self._losses):
            lead = ahead / self._seen
            self._seen = self._wins = self._losses = 0
            return lead
        if self._seen >= self._period:
            self._seen = self._wins = self._losses = 0
            return 0.0
        return None

    def fit(self, entries: int) -> None:
        """Size the shadow to a cache that holds ``entries`` entries when full.

        A byte-bounded cache holds as many entries as their sizes allow, which only filling
        it tells: a shadow larger than the cache would credit LRU with hits no cache of this
        size could make (measured: 8 KiB entries in a store sized for 2 KiB ones turned
        W-TinyLFU into LRU, 34% hits instead of 45% on Zipf 0.9).
        """
        self._capacity = max(1, entries // (self._mask + 1))
        lru = self._lru
        while len(lru) > self._capacity:
            lru.popitem(last=False)

    def clear(self) -> None:
        """Forget the shadow's keys and the running period."""
        self._lru.clear()
        self._seen = self._wins = self._losses = 0
