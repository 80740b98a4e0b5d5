"""W-TinyLFU with an adaptive window: which entry a bounded cache keeps, decided without I/O.

The policy sees accesses (hits and misses) and inserts, and answers which keys to evict. It
never touches the values: :class:`~vex_llm.cache.stores.memory.MemoryStore` keeps them in moka
(for ttl/tti) and removes what the policy names. The idea is Caffeine's (Einziger, Friedman,
Manes: "TinyLFU", 2017; "Adaptive Software Cache Management", 2018), written anew:

- a small LRU *window* admits every new entry, so bursts of recent keys are served;
- the *main* space is a segmented LRU (probation, protected); an entry leaving the window
  enters main only if its estimated frequency beats main's next victim (TinyLFU), so
  one-off keys and scans do not flush the entries that are asked for again and again;
- frequencies come from a 4-bit count-min sketch halved every ``10 x entries`` accesses
  (recent popularity, in 16 bytes per entry);
- a hill climber resizes the window every sample of accesses: it keeps moving the window's
  share in the direction that raised the hit ratio, with a decaying step, and restarts when
  the hit ratio shifts (a workload change). Recency-heavy traces grow the window towards LRU,
  frequency-heavy ones shrink it towards LFU;
- between samples, misses nudge the window at once, ARC-like: a miss on a key that
  admission turned away and that was last used less than ``entries`` accesses ago (an LRU
  of the same size would have hit it) grows the window a little; a miss on a key that main
  evicted less than ``entries`` accesses ago shrinks it. The climber alone reacts too slowly
  to a working set that changes every few thousand requests (measured: 88-92% of LRU's hits
  on such a trace, 99% with the nudges); the distance check keeps loops larger than the
  cache (where LRU hits nothing) from growing the window.

Sizes are weights (1 per entry, or a share of a byte budget): the policy keeps the total
weight at or below ``capacity``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence

__all__ = ["FrequencySketch", "WTinyLFU"]


class FrequencySketch:
    """A count-min sketch of two hashed 4-bit counters per key (a byte each), aged by halving.

    ``increment`` adds one to a key's counters (up to 15), ``frequency`` reads the smaller;
    the owner calls ``halve`` every ``sample`` increments, so old popularity fades.
    Sixteen counters per expected entry and two probes: measured on benchmarks/hit_ratio.py,
    as accurate as four rows of four per entry (Caffeine's shape), at half the cost per hit.
    """

    __slots__ = ("_mask", "_table", "sample")

    def __init__(self, entries: int) -> None:
        width = 64
        while width < min(16 * entries, 1 << 26):
            width *= 2
        self._mask = width - 1
        self._table = bytearray(width)
        self.sample = 10 * max(entries, 1)

    @property
    def width(self) -> int:
        """Counters in the table (a power of two, about sixteen per expected entry)."""
        return self._mask + 1

    def frequency(self, key: str) -> int:
        """The key's estimated recent frequency, 0..15."""
        # Python's str hash is random per process (no hash flooding) and cached on the str;
        # its two halves are the two probes.
        h = hash(key)
        t, m = self._table, self._mask
        return min(t[h & m], t[(h >> 32) & m])

    def increment(self, key: str) -> None:
        """Count one access of ``key``."""
        h = hash(key)
        t, m = self._table, self._mask
        i = h & m
        j = (h >> 32) & m
        if t[i] < 15:
            t[i] += 1
        if t[j] < 15:
            t[j] += 1

    def add(self, key: str, count: int) -> None:
        """Count ``count`` accesses of ``key`` at once."""
        h = hash(key)
        t, m = self._table, self._mask
        i = h & m
        j = (h >> 32) & m
        a = t[i] + count
        b = t[j] + count
        t[i] = a if a < 15 else 15
        t[j] = b if b < 15 else 15

    def halve(self) -> None:
        """Halve every counter (ageing)."""
        self._table = self._table.translate(_HALF)


_HALF = bytes(i >> 1 for i in range(256))


class WTinyLFU:
    """The eviction decisions of a weighted W-TinyLFU cache of total weight ``capacity``.

    Drive it with :meth:`on_hit` / :meth:`on_miss` for reads, :meth:`insert` for writes
    (it returns the keys to evict) and :meth:`remove` for keys that left on their own.
    ``entries`` sizes the sketch: the expected number of entries when full.
    """

    #: The window's share of the capacity at start (Caffeine's 1%; the climber moves it).
    INITIAL_WINDOW = 0.01
    #: Share of main reserved for protected entries.
    PROTECTED = 0.80
    #: First hill-climbing step, as a share of the capacity; decays by STEP_DECAY per sample.
    INITIAL_STEP = 0.0625
    STEP_DECAY = 0.98
    #: A hit-ratio change this large means a new workload: restart with the full step.
    RESTART = 0.05
    #: Accesses per hill-climbing sample, as a multiple of the expected entries.
    CLIMB_SAMPLE = 10.0
    #: Window growth per recent miss on a key admission rejected, and shrinkage per recent
    #: miss on a key main evicted, in entries (measured on benchmarks/hit_ratio.py's traces).
    GHOST_GAIN = 0.2
    GHOST_SHRINK = 0.4

    def __init__(self, capacity: int, entries: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._window: OrderedDict[str, int] = OrderedDict()
        self._probation: OrderedDict[str, int] = OrderedDict()
        self._protected: OrderedDict[str, int] = OrderedDict()
        self._window_weight = 0
        self._protected_weight = 0
        self._weight = 0
        self._window_max = max(1, round(capacity * self.INITIAL_WINDOW))
        self.sketch = FrequencySketch(entries if entries is not None else capacity)
        # Hill climber state.
        self._entries = entries if entries is not None else capacity
        self._sample = max(100, int(self.CLIMB_SAMPLE * self._entries))
        self._next_climb = self._sample
        self._next_halving = self.sketch.sample
        self._misses = 0
        self._sample_misses = 0
        self._previous_rate = 0.0
        self._step = -self.INITIAL_STEP * capacity  # first move: towards a smaller window
        self._adjustment = 0.0
        # Keys turned away by admission -> the access clock at their last use (only the last
        # `entries` accesses' worth is kept), and the window's keys -> their last use.
        # The clock counts accesses.
        self._rejected: OrderedDict[str, int] = OrderedDict()
        self._used: dict[str, int] = {}
        self._victims: OrderedDict[str, int] = OrderedDict()
        self._clock = 0
        self._next_tick = min(self._next_halving, self._next_climb)
        self._unit = max(1, capacity // self._entries)

    # -- reads -----------------------------------------------------------------------------

    def on_hits(self, keys: Sequence[str]) -> None:
        """Hits buffered by a store, oldest first: each distinct key is counted once per hit
        and refreshed once (a hot key read 40 times in a batch costs one update)."""
        self._clock += len(keys)
        add, refresh = self.sketch.add, self._refresh
        for key, count in Counter(keys).items():
            add(key, count)
            refresh(key)
        if self._clock >= self._next_tick:
            self._tick()

    def on_hit(self, key: str) -> None:
        """``key`` was read and found: count it and refresh its recency."""
        self.sketch.increment(key)
        self._clock += 1
        self._refresh(key)
        if self._clock >= self._next_tick:
            self._tick()

    def _refresh(self, key: str) -> None:
        protected = self._protected
        if key in protected:
            protected.move_to_end(key)
        elif key in self._probation:
            weight = self._probation.pop(key)
            self._protected[key] = weight
            self._protected_weight += weight
            self._demote_protected()
        elif key in self._window:
            self._window.move_to_end(key)
            self._used[key] = self._clock

    def on_miss(self, key: str) -> None:
        """``key`` was read and not found: count the demand for it."""
        self.sketch.increment(key)
        self._clock += 1
        self._misses += 1
        rejected_at = self._rejected.pop(key, None)
        if rejected_at is not None and self._clock - rejected_at < self._entries:
            self._resize_window(self.GHOST_GAIN * self._unit)
        evicted_at = self._victims.pop(key, None)
        if evicted_at is not None and self._clock - evicted_at < self._entries:
            self._resize_window(-self.GHOST_SHRINK * self._unit)
        if self._clock >= self._next_tick:
            self._tick()

    # -- writes ----------------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._window or key in self._probation or key in self._protected

    def __len__(self) -> int:
        return len(self._window) + len(self._probation) + len(self._protected)

    @property
    def weight(self) -> int:
        """The total weight of the keys the policy holds."""
        return self._weight

    @property
    def window_capacity(self) -> int:
        """The window's current share of the capacity (moved by the hill climber)."""
        return self._window_max

    def insert(self, key: str, weight: int) -> list[str]:
        """Add (or re-weigh) ``key``; return the keys to evict, possibly ``key`` itself."""
        if key in self:
            self.remove(key)
        self._window[key] = weight
        self._used[key] = self._clock
        self._window_weight += weight
        self._weight += weight
        if self._weight <= self.capacity and self._window_weight <= self._window_max:
            return []
        return self._evict()

    def remove(self, key: str) -> bool:
        """Forget ``key`` (deleted, expired or replaced); True if it was held."""
        for segment in (self._window, self._probation, self._protected):
            weight = segment.pop(key, None)
            if weight is not None:
                if segment is self._window:
                    self._window_weight -= weight
                    self._used.pop(key, None)
                elif segment is self._protected:
                    self._protected_weight -= weight
                self._weight -= weight
                return True
        return False

    def clear(self) -> None:
        """Forget every key (the frequencies stay: demand did not change)."""
        for segment in (self._window, self._probation, self._protected):
            segment.clear()
        self._rejected.clear()
        self._victims.clear()
        self._used.clear()
        self._window_weight = self._protected_weight = self._weight = 0

    # -- eviction --------------------------------------------------------------------------

    def _demote_protected(self) -> None:
        limit = (self.capacity - self._window_max) * self.PROTECTED
        while self._protected_weight > limit and len(self._protected) > 1:
            key, weight = self._protected.popitem(last=False)
            self._protected_weight -= weight
            self._probation[key] = weight

    def _evict(self) -> list[str]:
        # Entries pushed out of the window become candidates at probation's MRU end.
        candidates = 0
        last_used: dict[str, int] = {}
        # The newest entry stays in the window even when it alone outweighs it (a byte-bounded
        # store whose window is smaller than one answer still keeps the answer just made).
        while self._window_weight > self._window_max and len(self._window) > 1:
            key, weight = self._window.popitem(last=False)
            self._window_weight -= weight
            self._probation[key] = weight
            candidates += 1
            last_used[key] = self._used.pop(key, self._clock)
        evicted: list[str] = []
        while self._weight > self.capacity:
            victim = next(iter(self._probation), None)
            if victim is None:
                # Probation empty: fall back to protected, then the window (LRU order).
                segment = self._protected if self._protected else self._window
                victim, weight = segment.popitem(last=False)
                if segment is self._protected:
                    self._protected_weight -= weight
                else:
                    self._window_weight -= weight
                    self._used.pop(victim, None)
                    candidates = 0
                self._weight -= weight
                evicted.append(victim)
                continue
            candidate_rejected = None
            if candidates > 0:
                candidate = next(reversed(self._probation))
                if candidate != victim and not self._admit(candidate, victim):
                    victim = candidate_rejected = candidate
                    self._remember(self._rejected, candidate, last_used.get(candidate, self._clock))
                candidates -= 1
            weight = self._probation.pop(victim)
            self._weight -= weight
            evicted.append(victim)
            if victim is not candidate_rejected:
                self._remember(self._victims, victim, self._clock)
        return evicted

    def _remember(self, ghosts: OrderedDict[str, int], key: str, used: int) -> None:
        ghosts[key] = used
        oldest = self._clock - self._entries
        while ghosts and next(iter(ghosts.values())) <= oldest:
            ghosts.popitem(last=False)

    def _admit(self, candidate: str, victim: str) -> bool:
        """TinyLFU: the candidate enters main only if it is asked for more than the victim."""
        return self.sketch.frequency(candidate) > self.sketch.frequency(victim)

    # -- hill climbing ---------------------------------------------------------------------

    def _tick(self) -> None:
        if self._clock >= self._next_halving:
            self.sketch.halve()
            self._next_halving = self._clock + self.sketch.sample
        if self._clock >= self._next_climb:
            self._climb()
        self._next_tick = min(self._next_halving, self._next_climb)

    def _climb(self) -> None:
        accesses = self._clock - self._next_climb + self._sample
        rate = 1 - (self._misses - self._sample_misses) / accesses
        self._sample_misses = self._misses
        self._next_climb = self._clock + self._sample
        delta = rate - self._previous_rate
        amount = self._step if delta >= 0 else -self._step
        if abs(delta) >= self.RESTART:
            self._step = self.INITIAL_STEP * self.capacity * (1 if amount >= 0 else -1)
        else:
            self._step = amount * self.STEP_DECAY
        self._previous_rate = rate
        self._resize_window(amount)

    def _resize_window(self, amount: float) -> None:
        self._adjustment += amount
        whole = int(self._adjustment)
        if whole == 0:
            return
        self._adjustment -= whole
        new_max = min(self.capacity - 1, max(1, self._window_max + whole))
        self._window_max = max(1, new_max)
        # Shrinking the window moves its LRU entries into probation; growing it takes nothing
        # (the window fills from new inserts). Main's protected share follows the new size.
        while self._window_weight > self._window_max and len(self._window) > 1:
            key, weight = self._window.popitem(last=False)
            self._window_weight -= weight
            self._probation[key] = weight
            self._used.pop(key, None)
        self._demote_protected()
