"""A separate OS process for the multi-process store tests (run as a script, not collected).

- ``worker.py burst URL N LATENCY``: opens the store, prints ``ready``, waits for a line on
  stdin, then sends N identical concurrent requests; prints calls, outcomes and stats as JSON.
- ``worker.py once URL PROMPT``: one request; prints calls and the outcome.
- ``worker.py writer URL PAD``: stores entries forever, printing each key once its set()
  has returned (for the kill -9 test).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections import Counter

from vex_llm import CachedProvider, LLMCacheConfig, LLMRequest, MockProvider, open_store
from vex_llm.cache.entry import CacheEntry
from vex_llm.models import LLMResponse

CONFIG = LLMCacheConfig(max_entries=10_000, max_bytes=None, ttl=600.0, tti=None)


async def burst(url: str, n: int, latency: float) -> None:
    mock = MockProvider.constant("the shared answer", latency=latency)
    cached = CachedProvider(mock, CONFIG, store=open_store(url, max_entries=10_000))
    await cached.asize()  # connect (and migrate) before the start signal, not during the race
    # A handshake, not a start time: a slow start under load must not let one process begin
    # after the other has already finished.
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    request = LLMRequest(prompt="fifty identical questions")
    results = await asyncio.gather(*(cached.lookup(request) for _ in range(n)))
    stats = await cached.astats()
    await cached.aclose()
    print(
        json.dumps(
            {
                "calls": mock.calls,
                "outcomes": Counter(r.outcome for r in results),
                "contents": sorted({r.response.content for r in results}),
                "stats": {"misses": stats.misses, "coalesced": stats.coalesced},
            }
        )
    )


async def once(url: str, prompt: str) -> None:
    mock = MockProvider.constant(f"answer to {prompt}")
    cached = CachedProvider(mock, CONFIG, store=open_store(url, max_entries=10_000))
    result = await cached.lookup(LLMRequest(prompt=prompt))
    await cached.aclose()
    print(json.dumps({"calls": mock.calls, "outcome": result.outcome}))


async def writer(url: str, pad: int) -> None:
    store = open_store(url, max_entries=1_000_000)
    i = 0
    while True:
        content = f"entry {i} " + "x" * pad + f" end {i}"
        entry = CacheEntry(LLMResponse(content, "m", cached=True), time.time())
        entry = dataclasses.replace(entry, nbytes=len(content))
        await store.set(f"key-{i}", entry, None, None)
        print(f"key-{i}", flush=True)
        i += 1


def main() -> None:
    mode, url, *rest = sys.argv[1:]
    if mode == "burst":
        asyncio.run(burst(url, int(rest[0]), float(rest[1])))
    elif mode == "once":
        asyncio.run(once(url, rest[0]))
    elif mode == "writer":
        asyncio.run(writer(url, int(rest[0])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
