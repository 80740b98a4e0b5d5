"""Cache hit latency and memory per entry, next to the floors they are measured against.

Run: ``.venv/bin/python benchmarks/cache_hit.py`` (or ``make bench``). Prints a table:

- hit: ``await cached.complete(req)`` on a stored ~1 KB prompt (same request object);
- hit, new request: the same, building the ``LLMRequest`` each time (what a caller pays);
- key alone: the key as the hit path computes it (identity rendered once), and the public
  ``cache_key(request, identity)``, which renders the identity each call;
- SHA-256 + dict: hashing the prompt and a dict lookup, the floor for any hashed cache;
- dict lookup: a plain dict with a precomputed key.

Each figure is the median (and p99) over batches of 100 calls, 20 000 calls in all. Then
10 000 entries of ~1 KB responses are stored and the memory per entry is reported, both as
Python allocations (tracemalloc) and as resident memory growth (which includes moka's Rust
side), against the 1 KB payload.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from vex_llm import CachedProvider, LLMCacheConfig, LLMProvider, LLMRequest, LLMResponse, Usage
from vex_llm.cache.key import cache_key

BATCH = 100
BATCHES = 200
ENTRIES = 10_000
PAYLOAD = 1024
PROMPT = ("The quick brown fox jumps over the lazy dog. " * 30)[:1024]


class UniqueAnswers(LLMProvider):
    """Answers each prompt with its own ~1 KB text, so no two entries share a string."""

    def name(self) -> str:
        return "bench"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        text = (request.prompt * (PAYLOAD // max(1, len(request.prompt)) + 1))[:PAYLOAD]
        return LLMResponse(content=text, model="bench", usage=Usage(10, 256))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def time_sync(fn: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter() - started) / BATCH * 1e6)
    return percentiles(samples)


async def time_async(fn: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(BATCH):
            await fn()
        samples.append((time.perf_counter() - started) / BATCH * 1e6)
    return percentiles(samples)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def fill(entries: int) -> CachedProvider:
    config = LLMCacheConfig(max_entries=entries, max_bytes=None, ttl=3600, tti=None)
    cached = CachedProvider(UniqueAnswers(), config)
    for i in range(entries):
        await cached.complete(LLMRequest(prompt=f"{i:08d} distinct prompt"))
    assert cached.count() == entries
    return cached


async def memory_per_entry() -> tuple[float, float]:
    """(Python bytes per entry, resident bytes per entry), measured in separate passes.

    Resident memory first and without tracemalloc, whose own bookkeeping would inflate it.
    """
    gc.collect()
    before_rss = rss_bytes()
    kept = await fill(ENTRIES)
    gc.collect()
    rss = (rss_bytes() - before_rss) / ENTRIES
    del kept
    gc.collect()
    tracemalloc.start()
    before_py = tracemalloc.get_traced_memory()[0]
    kept = await fill(ENTRIES)
    gc.collect()
    py_bytes = (tracemalloc.get_traced_memory()[0] - before_py) / ENTRIES
    tracemalloc.stop()
    assert kept.count() == ENTRIES
    return py_bytes, rss


async def main() -> None:
    cached = CachedProvider(UniqueAnswers(), LLMCacheConfig.default())
    request = LLMRequest.simple(PROMPT)
    await cached.complete(request)
    assert (await cached.complete(request)).cached
    identity = cached.cache_identity()
    key = cache_key(request, identity)
    table = {key: object()}
    prompt_bytes = PROMPT.encode()

    # The timed call is ``await cached.complete(...)`` itself: no wrapping coroutine around
    # it, which would add its own creation and await (~0.1 µs) to what the cache costs.
    rows = [
        ("cache hit (same request object)", await time_async(lambda: cached.complete(request))),
        (
            "cache hit (request built per call)",
            await time_async(lambda: cached.complete(LLMRequest.simple(PROMPT))),
        ),
        ("cache key alone (as the hit path builds it)", time_sync(lambda: cached.key_for(request))),
        ("cache_key() public function", time_sync(lambda: cache_key(request, identity))),
        (
            "SHA-256 of prompt + dict lookup",
            time_sync(lambda: table.get(hashlib.sha256(prompt_bytes).hexdigest())),
        ),
        ("dict lookup, precomputed key", time_sync(lambda: table.get(key))),
    ]
    hits = cached.stats().hits
    print(
        f"vex-llm cache hit path, ~1 KB prompt, {BATCHES * BATCH} calls per row "
        f"(median and p99 of {BATCH}-call batch means), {hits} hits served"
    )
    print(f"{'what':<44} {'median µs':>10} {'p99 µs':>10}")
    for label, (median, p99) in rows:
        print(f"{label:<44} {median:>10.2f} {p99:>10.2f}")
    py_bytes, rss = await memory_per_entry()
    print()
    print(f"memory for {ENTRIES} entries of {PAYLOAD} B responses")
    print(f"{'measure':<40} {'B/entry':>10} {'x payload':>10}")
    print(f"{'Python allocations (tracemalloc)':<40} {py_bytes:>10.0f} {py_bytes / PAYLOAD:>10.2f}")
    print(f"{'resident memory growth (RSS)':<40} {rss:>10.0f} {rss / PAYLOAD:>10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
