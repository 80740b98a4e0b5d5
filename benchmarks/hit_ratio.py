"""Hit ratio of the memory store's eviction policies on synthetic traces, next to the optimum.

Run: ``.venv/bin/python benchmarks/hit_ratio.py [--length N] [--seed S]`` (or ``make bench``).
Each trace is a list of keys; every policy sees it as a cache does: a get, and on a miss a
set. The columns:

- Bélády: the offline optimum (evict the key used farthest in the future, and do not admit
  a key whose next use is farther than every cached one's), computed from the whole trace;
- ``MemoryStore`` with ``policy="w-tinylfu"`` (the default) and ``policy="lru"``, driven
  through ``get_now``/``set`` exactly as ``CachedProvider`` drives them;
- theine: the adaptive W-TinyLFU of the ``theine`` package (Rust core), if installed;
- moka TinyLFU: moka's own TinyLFU (no window), which the store used to offer.

Traces (100k distinct keys unless said): Zipf 0.9 and 1.0 at capacities 1k and 10k; bursty:
a working set of half the cache, fresh every 5x capacity requests (recency-heavy: LRU is
optimal); Zipf 0.9 with a scan of 2x capacity one-off keys every 20k requests; a loop over
1.5x capacity keys (LRU hits nothing). Figures are hit % and, in brackets, % of Bélády.
``--length`` (default 500 000 requests per trace) bounds the run time: about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import random
import time
from collections.abc import Callable

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores.memory import MemoryStore
from vex_llm.models import LLMResponse

Trace = list[str]

ENTRY = CacheEntry(LLMResponse("an answer", "bench", cached=True), 0.0, 1024)


def zipf(keys: int, s: float, length: int, rng: random.Random) -> Trace:
    """Key ranks drawn with probability proportional to 1 / rank^s; ranks shuffled to keys."""
    cumulative = list(itertools.accumulate(1.0 / rank**s for rank in range(1, keys + 1)))
    names = [f"z{i}" for i in range(keys)]
    rng.shuffle(names)
    return [names[i] for i in rng.choices(range(keys), cum_weights=cumulative, k=length)]


def bursty(capacity: int, length: int, rng: random.Random) -> Trace:
    """Phases of 5x capacity requests over a fresh working set of half the capacity."""
    trace: Trace = []
    phase = 0
    while len(trace) < length:
        working = [f"b{phase}-{i}" for i in range(capacity // 2)]
        trace.extend(rng.choice(working) for _ in range(5 * capacity))
        phase += 1
    return trace[:length]


def with_scans(base: Trace, capacity: int, every: int = 20_000) -> Trace:
    """``base`` with a scan of 2x capacity one-off keys after every ``every`` requests."""
    trace: Trace = []
    for start in range(0, len(base), every):
        trace.extend(base[start : start + every])
        trace.extend(f"scan{start}-{i}" for i in range(2 * capacity))
    return trace[: len(base)]


def loop(capacity: int, length: int) -> Trace:
    """The same 1.5x capacity keys, over and over, in the same order."""
    keys = [f"l{i}" for i in range(capacity * 3 // 2)]
    return [keys[i % len(keys)] for i in range(length)]


def belady(trace: Trace, capacity: int) -> float:
    never = len(trace) + 1
    next_use = [never] * len(trace)
    seen: dict[str, int] = {}
    for i in range(len(trace) - 1, -1, -1):
        next_use[i] = seen.get(trace[i], never)
        seen[trace[i]] = i
    cached: dict[str, int] = {}  # key -> its next use
    farthest: list[tuple[int, str]] = []  # (-next use, key), stale items skipped lazily
    hits = 0
    for i, key in enumerate(trace):
        upcoming = next_use[i]
        if key in cached:
            hits += 1
        elif upcoming == never:
            continue
        elif len(cached) >= capacity:
            while cached.get(farthest[0][1]) != -farthest[0][0]:
                heapq.heappop(farthest)
            if -farthest[0][0] <= upcoming:
                continue  # every cached key is needed sooner: do not admit
            del cached[heapq.heappop(farthest)[1]]
        cached[key] = upcoming
        heapq.heappush(farthest, (-upcoming, key))
    return hits / len(trace)


def memory_store(policy: str) -> Callable[[Trace, int], float]:
    def run(trace: Trace, capacity: int) -> float:
        store = MemoryStore(max_entries=capacity, policy=policy)  # type: ignore[arg-type]

        async def drive() -> int:
            hits = 0
            get, put = store.get_now, store.set
            for key in trace:
                if get(key) is not None:
                    hits += 1
                else:
                    await put(key, ENTRY, None, None)
            return hits

        hits = asyncio.run(drive())
        assert store.count_now() <= capacity
        return hits / len(trace)

    return run


def theine(trace: Trace, capacity: int) -> float:
    from theine import Cache  # type: ignore[import-not-found]

    cache = Cache(capacity, nolock=True)
    hits = 0
    for key in trace:
        if cache.get(key)[1]:
            hits += 1
        else:
            cache.set(key, ENTRY)
    cache.close()
    return hits / len(trace)


def moka_tinylfu(trace: Trace, capacity: int) -> float:
    from moka_py import Moka

    cache: Moka[str, CacheEntry] = Moka(capacity, policy="tiny_lfu")
    hits = 0
    for key in trace:
        if cache.get(key) is not None:
            hits += 1
        else:
            cache.set(key, ENTRY)
            cache.run_pending_tasks()
    return hits / len(trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--length", type=int, default=500_000, help="requests per trace")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = args.length
    z09, z10 = zipf(100_000, 0.9, n, rng), zipf(100_000, 1.0, n, rng)
    traces = [
        ("Zipf 0.9", 1_000, z09),
        ("Zipf 0.9", 10_000, z09),
        ("Zipf 1.0", 1_000, z10),
        ("Zipf 1.0", 10_000, z10),
        ("bursty (recency)", 1_000, bursty(1_000, n, rng)),
        ("Zipf 0.9 + scans", 1_000, with_scans(z09, 1_000)),
        ("loop 1.5x cache", 1_000, loop(1_000, n)),
    ]
    policies: list[tuple[str, Callable[[Trace, int], float]]] = [
        ("W-TinyLFU (vex, default)", memory_store("w-tinylfu")),
        ("LRU (vex)", memory_store("lru")),
    ]
    try:
        import theine as _  # type: ignore[import-not-found]

        policies.append(("theine W-TinyLFU", theine))
    except ImportError:
        print("(theine is not installed: pip install theine, for its column)")
    policies.append(("moka TinyLFU", moka_tinylfu))
    header = ["trace", "capacity", "Bélády", *(name for name, _ in policies)]
    print(f"{n:,} requests per trace, seed {args.seed}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    began = time.perf_counter()
    for name, capacity, trace in traces:
        best = belady(trace, capacity)
        cells = [name, f"{capacity:,}", f"{best:.1%}"]
        for _, run in policies:
            ratio = run(trace, capacity)
            cells.append(f"{ratio:.1%} ({ratio / best:.0%})")
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
