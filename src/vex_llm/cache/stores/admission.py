"""W-TinyLFU with an adaptive window: which entry a bounded cache keeps, decided without I/O.

The policy sees accesses (hits and misses) and inserts, and answers which keys to evict. It
never touches the values: :class:`~vex_llm.cache.stores.memory.MemoryStore` keeps them in moka
(for ttl/tti) and removes what the policy names. The idea is Caffeine's (Einziger, Friedman,
Manes: "TinyLFU", 2017; "Adaptive Software Cache Management", 2018), written anew:

- a small LRU *window* admits every new entry, so bursts of recent keys are served;
- the *main* space is a segmented LRU (probation, protected); an entry leaving the window
  enters main only if its estimated frequency beats main's next victim (TinyLFU), so
  one-off keys and scans do not flush the entries that are asked for again and again;
- frequencies come from a count-min sketch of 4-bit counters (four probes, conservative
  update) halved every ``20 x entries`` accesses (recent popularity, 16 bytes per entry);
- the policy starts as LRU (the window is the whole cache) and drops the window to 1% once
  keys LRU evicted come back (:mod:`~vex_llm.cache.stores.cold_start`): until then the
  sketch's counts are no evidence that frequency pays, and a working set that changes before
  any key returns (old keys with high counts, new ones with none) keeps LRU's hits;
- a hill climber resizes the window every sample of accesses: it keeps moving the window's
  share in the direction that raised the hit ratio, with a decaying step, restarts when the
  hit ratio jumps (a new workload) and stays put when it barely moved (noise);
- a recency guard (:mod:`~vex_llm.cache.stores.recency_guard`) scores a sampled shadow LRU
  against the policy and grows the window at once by LRU's lead when LRU hits more: a
  working set that changes every few thousand requests needs a window as large as itself,
  hundreds of entries away, where small climbing steps find nothing to gain in between.
  A loop larger than the cache (LRU hits nothing) never triggers it.

Measured on ``benchmarks/hit_ratio.py`` (README, "Hit ratio"): above theine's adaptive
W-TinyLFU on every Zipf trace, exactly LRU's hits on the bursty one (the first phase change
cost about 150 extra misses before the LRU start).
The earlier version (ARC-like ghost nudges instead of the guard, two-probe sketch halved
every ``10 x entries``) wandered its window to 10-25% on Zipf traces.

Sizes are weights (1 per entry, or a share of a byte budget): the policy keeps the total
weight at or below ``capacity``.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Sequence

from vex_llm.cache.stores.cold_start import ColdStart, split_by_demand
from vex_llm.cache.stores.recency_guard import RecencyGuard
from vex_llm.validation import positive_int

__all__ = ["FrequencySketch", "WTinyLFU"]


class FrequencySketch:
    """A count-min sketch of four hashed 4-bit counters per key (a byte each), aged by halving.

    ``increment`` adds one to a key's smallest counters only (conservative update: a counter
    shared with a more popular key is not inflated further), ``frequency`` reads the smallest;
    the owner calls ``halve`` every ``sample`` increments, so old popularity fades. Sixteen
    counters per expected entry. Measured on benchmarks/hit_ratio.py (Zipf 0.9, 10k entries):
    two probes with plain updates reached 65.5% hits, four conservative probes 66.5%.
    """

    __slots__ = ("_mask", "_table", "sample")

    def __init__(self, entries: int, sample: int | None = None) -> None:
        width = 64
        while width < min(16 * entries, 1 << 26):
            width *= 2
        self._mask = width - 1
        self._table = bytearray(width)
        self.sample = sample if sample is not None else 10 * max(entries, 1)

    @property
    def width(self) -> int:
        """Counters in the table (a power of two, about sixteen per expected entry)."""
        return self._mask + 1

    def _probes(self, key: str) -> tuple[int, int, int, int]:
        # Python's str hash is keyed per process (SipHash: no hash flooding from outside)
        # and cached on the str; four overlapping 16-bit strides of it are the four probes.
        h, m = hash(key), self._mask
        return h & m, (h >> 16) & m, (h >> 32) & m, (h >> 48) & m

    def frequency(self, key: str) -> int:
        """The key's estimated recent frequency, 0..15."""
        t = self._table
        a, b, c, d = self._probes(key)
        return min(t[a], t[b], t[c], t[d])

    def increment(self, key: str) -> None:
        """Count one access of ``key``."""
        self.add(key, 1)

    def add(self, key: str, count: int) -> None:
        """Count ``count`` accesses of ``key`` at once."""
        # The probes inlined (this runs for every distinct key read: measured 0.1 µs less).
        t, m = self._table, self._mask
        h = hash(key)
        a, b, c, d = h & m, (h >> 16) & m, (h >> 32) & m, (h >> 48) & m
        w, x, y, z = t[a], t[b], t[c], t[d]
        low = w
        if x < low:
            low = x
        if y < low:
            low = y
        if z < low:
            low = z
        if low >= 15:
            return
        low = low + count if low + count < 15 else 15
        if w < low:
            t[a] = low
        if x < low:
            t[b] = low
        if y < low:
            t[c] = low
        if z < low:
            t[d] = low

    def halve(self) -> None:
        """Halve every counter (ageing)."""
        self._table = self._table.translate(_HALF)


_HALF = bytes(i >> 1 for i in range(256))


class WTinyLFU:
    """The eviction decisions of a weighted W-TinyLFU cache of total weight ``capacity``.

    Drive it with :meth:`on_hit` / :meth:`on_miss` for reads, :meth:`insert` for writes
    (it returns the keys to evict) and :meth:`remove` for keys that left on their own.
    ``entries`` sizes the sketch and the recency guard: the expected number of entries when
    full. ``jitter=False`` turns off the rare random admissions below; ``rng`` draws them
    (tests pass a seeded one).
    """

    #: The window's floor, as a share of the capacity (Caffeine's 1%), where it drops once
    #: frequency has shown that it pays (ColdStart); until then the window is the whole cache.
    INITIAL_WINDOW = 0.01
    #: Share of main reserved for protected entries.
    PROTECTED = 0.80
    #: First hill-climbing step, as a share of the capacity; decays by STEP_DECAY per sample.
    INITIAL_STEP = 0.0625
    STEP_DECAY = 0.98
    #: A hit-ratio change this large means a new workload: restart with the full step.
    RESTART = 0.05
    #: A hit-ratio change smaller than this is noise: the climber stays where it is. Without
    #: it, a flat stretch (every window above the working set hits alike) walks the window
    #: off a cliff, and sampling noise on Zipf traces wanders it far from the best 1%.
    FLAT = 0.01
    #: Accesses per hill-climbing sample, as a multiple of the expected entries.
    CLIMB_SAMPLE = 10.0
    #: Accesses between two halvings of the sketch, as a multiple of the expected entries
    #: (Caffeine: 10; 20 estimates the entries near the boundary better, measured).
    SKETCH_SAMPLE = 20.0
    #: With jitter, a candidate at least this popular that loses to the victim is still
    #: admitted once in ADMIT_ODDS: Caffeine's defence against victims whose counters were
    #: inflated on purpose by colliding keys (Python keys its str hash per process, which
    #: makes that hard, but ``PYTHONHASHSEED`` can pin it). Measured: no change on the Zipf
    #: traces, 1-2 points less on the loop trace (where every key is equally warm).
    WARM = 6
    ADMIT_ODDS = 128

    def __init__(
        self,
        capacity: int,
        entries: int | None = None,
        *,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        positive_int("capacity", capacity)
        self.capacity = capacity
        self._window: OrderedDict[str, int] = OrderedDict()
        self._probation: OrderedDict[str, int] = OrderedDict()
        self._protected: OrderedDict[str, int] = OrderedDict()
        self._window_weight = 0
        self._protected_weight = 0
        self._weight = 0
        self._window_floor = max(1, round(capacity * self.INITIAL_WINDOW))
        # Frequency has not shown that it pays yet: start as LRU (the window is everything
        # but one unit) until the cold-start watch sees evicted popular keys come back.
        self._window_max = max(self._window_floor, capacity - 1)
        expected = max(1, entries if entries is not None else capacity)
        self.sketch = FrequencySketch(expected, int(self.SKETCH_SAMPLE * expected))
        self._guard = RecencyGuard(expected)
        self._cold: ColdStart | None = ColdStart(
            max(1, expected // self._guard.sampling), self._guard.mask
        )
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        # Hill climber state; the clock counts accesses.
        self._sample = max(100, int(self.CLIMB_SAMPLE * expected))
        self._next_climb = self._sample
        self._next_halving = self.sketch.sample
        self._misses = 0
        self._sample_misses = 0
        self._previous_rate = 0.0
        self._step = -self.INITIAL_STEP * capacity  # first move: towards a smaller window
        self._adjustment = 0.0
        self._clock = 0
        self._next_tick = min(self._next_halving, self._next_climb)

    # -- reads -----------------------------------------------------------------------------

    def on_hits(self, keys: Sequence[str]) -> None:
        """Hits buffered by a store, oldest first: each distinct key is counted once per hit
        and refreshed once (a hot key read 40 times in a batch costs one update)."""
        self._clock += len(keys)
        add, refresh, unsampled = self.sketch.add, self._refresh, self._guard.mask
        for key, count in Counter(keys).items():
            add(key, count)
            refresh(key)
            if not hash(key) & unsampled:
                self._heed(self._guard.access(key, True, count))
        if self._clock >= self._next_tick:
            self._tick()

    def on_hit(self, key: str) -> None:
        """``key`` was read and found: count it and refresh its recency."""
        self.sketch.add(key, 1)
        self._clock += 1
        self._refresh(key)
        if self._guard.sampled(key):
            self._heed(self._guard.access(key, True))
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

    def on_miss(self, key: str) -> None:
        """``key`` was read and not found: count the demand for it."""
        self.sketch.add(key, 1)
        self._clock += 1
        self._misses += 1
        if self._guard.sampled(key):
            self._heed(self._guard.access(key, False))
        if self._cold is not None and self._cold.missed(key):
            self._start_frequency()
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
        """The window's current share of the capacity (moved by the climber and the guard)."""
        return self._window_max

    def insert(self, key: str, weight: int) -> list[str]:
        """Add (or re-weigh) ``key``; return the keys to evict, possibly ``key`` itself."""
        if key in self:
            self.remove(key)
        self._window[key] = weight
        self._window_weight += weight
        self._weight += weight
        if self._weight <= self.capacity and self._window_weight <= self._window_max:
            return []
        evicted = self._evict()
        cold = self._cold
        if cold is not None:
            for victim in evicted:
                cold.evicted(victim, self.sketch.frequency(victim))
        if evicted:
            # Full: the guard's shadow LRU holds as many (sampled) entries as the cache does.
            self._guard.fit(len(self))
        return evicted

    def remove(self, key: str) -> bool:
        """Forget ``key`` (deleted, expired or replaced); True if it was held."""
        for segment in (self._window, self._probation, self._protected):
            weight = segment.pop(key, None)
            if weight is not None:
                if segment is self._window:
                    self._window_weight -= weight
                elif segment is self._protected:
                    self._protected_weight -= weight
                self._weight -= weight
                return True
        return False

    def clear(self) -> None:
        """Forget every key (the frequencies stay: demand did not change)."""
        for segment in (self._window, self._probation, self._protected):
            segment.clear()
        self._guard.clear()
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
        # The newest entry stays in the window even when it alone outweighs it (a byte-bounded
        # store whose window is smaller than one answer still keeps the answer just made).
        while self._window_weight > self._window_max and len(self._window) > 1:
            key, weight = self._window.popitem(last=False)
            self._window_weight -= weight
            self._probation[key] = weight
            candidates += 1
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
                    candidates = 0
                self._weight -= weight
                evicted.append(victim)
                continue
            if candidates > 0:
                candidate = next(reversed(self._probation))
                if candidate != victim and not self._admit(candidate, victim):
                    victim = candidate
                candidates -= 1
            weight = self._probation.pop(victim)
            self._weight -= weight
            evicted.append(victim)
        return evicted

    def _admit(self, candidate: str, victim: str) -> bool:
        """TinyLFU: the candidate enters main only if it is asked for more than the victim
        (ties keep the victim); with jitter, a warm loser sometimes gets in anyway."""
        wanted = self.sketch.frequency(candidate)
        if wanted > self.sketch.frequency(victim):
            return True
        return self._jitter and wanted >= self.WARM and self._rng.randrange(self.ADMIT_ODDS) == 0

    # -- window sizing ---------------------------------------------------------------------

    def _start_frequency(self) -> None:
        # Popular keys LRU evicted come back: shrink the window to its floor at once and let
        # the climber and the guard size it from there.
        self._cold = None
        window, keep = self._window, self._window_floor
        leaving: list[tuple[str, int]] = []
        while self._window_weight > keep and len(window) > 1:
            key, weight = window.popitem(last=False)
            self._window_weight -= weight
            leaving.append((key, weight))
        self._window_max = keep
        room = (self.capacity - keep) * self.PROTECTED - self._protected_weight
        protected, probation = split_by_demand(leaving, self.sketch.frequency, room)
        self._protected.update(protected)
        self._protected_weight += sum(weight for _, weight in protected)
        self._probation.update(probation)
        self._demote_protected()

    def _heed(self, lead: float | None) -> None:
        # The recency guard saw LRU hit a ``lead`` share more often lately: grow the window
        # by that share of the capacity at once (a step the climber would take far too long
        # to find: nothing pays until the window holds the working set).
        if lead:
            self._resize_window(lead * self.capacity)

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
        self._previous_rate = rate
        if self._cold is not None:
            return  # LRU until frequency shows it pays: nothing to climb yet
        if abs(delta) < self.FLAT:
            self._step *= self.STEP_DECAY  # no evidence either way: stay
            return
        amount = self._step if delta >= 0 else -self._step
        if abs(delta) >= self.RESTART:
            self._step = self.INITIAL_STEP * self.capacity * (1 if amount >= 0 else -1)
        else:
            self._step = amount * self.STEP_DECAY
        self._resize_window(amount)

    def _resize_window(self, amount: float) -> None:
        self._adjustment += amount
        whole = int(self._adjustment)
        if whole == 0:
            return
        self._adjustment -= whole
        self._window_max = max(self._window_floor, min(self.capacity - 1, self._window_max + whole))
        # Shrinking the window moves its LRU entries into probation; growing it takes nothing
        # (the window fills from new inserts). Main's protected share follows the new size.
        while self._window_weight > self._window_max and len(self._window) > 1:
            key, weight = self._window.popitem(last=False)
            self._window_weight -= weight
            self._probation[key] = weight
        self._demote_protected()
