"""A separate OS process for the multi-process store tests (run as a script, not collected).

- ``worker.py burst URL N LATENCY``: opens the store, prints ``ready``, waits for a line on
  stdin, then sends N identical concurrent requests; prints calls, outcomes and stats as JSON.
- ``worker.py once URL PROMPT``: one request; prints calls and the outcome.
- ``worker.py writer URL PAD``: stores entries forever, printing each key once its set()
  has returned (for the kill -9 test).
- ``worker.py streams URL N CHUNKS DELAY``: like ``burst``, with N identical streams of a
  slow upstream stream (CHUNKS chunks, DELAY s apart); prints calls, outcomes and the texts.
- ``worker.py stream-one URL CHUNKS DELAY``: one stream with a short lease (0.5 s); prints
  ``streaming`` once its upstream has sent a chunk and ``waiting`` once it polls another
  process's lease (handshakes for the kill test), then the JSON report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from vex_llm import (
    CachedProvider,
    Chunk,
    LeasePolicy,
    LLMCacheConfig,
    LLMProvider,
    LLMRequest,
    MockProvider,
    Usage,
    open_store,
)
from vex_llm.cache.entry import CacheEntry
from vex_llm.models import LLMResponse

CONFIG = LLMCacheConfig(max_entries=10_000, max_bytes=None, ttl=600.0, tti=None)


async def burst(url: str, n: int, latency: float) -> None:
    mock = MockProvider.constant("the shared answer", latency=latency)
    cached = CachedProvider(mock, CONFIG, store=open_store(url, max_entries=10_000))
    await cached.acount()  # connect (and migrate) before the start signal, not during the race
    # A handshake, not a start time: a slow start under load must not let one process begin
    # after the other has already finished.
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    request = LLMRequest(prompt="fifty identical questions")
    results = await asyncio.gather(*(cached.complete_result(request) for _ in range(n)))
    stats = await cached.astats()
    await cached.aclose()
    await cached.store.aclose()
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
    result = await cached.complete_result(LLMRequest(prompt=prompt))
    await cached.aclose()
    await cached.store.aclose()
    print(json.dumps({"calls": mock.calls, "outcome": result.outcome}))


class SlowStream(LLMProvider):
    """An upstream that streams ``chunks`` words, ``delay`` seconds apart."""

    def __init__(self, chunks: int, delay: float) -> None:
        self.chunks = chunks
        self.delay = delay
        self.calls = 0

    def name(self) -> str:
        return "slow-stream"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError("these workers stream")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        for i in range(self.chunks):
            yield Chunk(delta=f"w{i} ")
            if i == 0:
                print("streaming", flush=True)
            await asyncio.sleep(self.delay)
        yield Chunk(finish_reason="stop", usage=Usage(3, self.chunks))


STREAM_REQUEST = LLMRequest(prompt="one streamed question")


async def streams(url: str, n: int, chunks: int, delay: float) -> None:
    upstream = SlowStream(chunks, delay)
    store = open_store(url, max_entries=10_000)
    cached = CachedProvider(upstream, CONFIG, store=store)
    await cached.acount()  # connect (and migrate) before the start signal
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one() -> tuple[str, str]:
        stream = await cached.open_stream(STREAM_REQUEST)
        text = "".join([c.delta async for c in stream])
        return stream.outcome, text

    results = await asyncio.gather(*(one() for _ in range(n)))
    stats = await cached.astats()
    await cached.aclose()
    await store.aclose()
    report: dict[str, Any] = {
        "calls": upstream.calls,
        "outcomes": Counter(outcome for outcome, _ in results),
        "texts": sorted({text for _, text in results}),
        "stats": {"misses": stats.misses, "coalesced": stats.coalesced},
    }
    print(json.dumps(report), flush=True)


class AnnouncingLeases:
    """Wraps a store's lease checks to print ``waiting`` the first time it finds the lease
    held by another process (``lease_held``, or ``get_or_lease`` finding neither entry nor
    lease)."""

    def __init__(self, store: Any) -> None:
        self.told = False
        self.held = store.lease_held
        self.read_or_lease = store.get_or_lease
        store.lease_held = self.lease_held
        store.get_or_lease = self.get_or_lease

    def _tell(self) -> None:
        if not self.told:
            self.told = True
            print("waiting", flush=True)

    async def lease_held(self, key: str) -> bool:
        held = bool(await self.held(key))
        if held:
            self._tell()
        return held

    async def get_or_lease(self, key: str, owner: str, ttl: float) -> Any:
        entry, taken = await self.read_or_lease(key, owner, ttl)
        if entry is None and not taken:
            self._tell()
        return entry, taken


async def stream_one(url: str, chunks: int, delay: float) -> None:
    upstream = SlowStream(chunks, delay)
    store = open_store(url, max_entries=10_000)
    AnnouncingLeases(store)
    lease = LeasePolicy(ttl=0.5, first_poll=0.01, max_poll=0.05)
    cached = CachedProvider(upstream, CONFIG, store=store, lease=lease)
    await cached.acount()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stream = await cached.open_stream(STREAM_REQUEST)
    text = "".join([c.delta async for c in stream])
    await cached.aclose()
    await store.aclose()
    print(json.dumps({"calls": upstream.calls, "outcome": stream.outcome, "text": text}))


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
    elif mode == "streams":
        asyncio.run(streams(url, int(rest[0]), int(rest[1]), float(rest[2])))
    elif mode == "stream-one":
        asyncio.run(stream_one(url, int(rest[0]), float(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
