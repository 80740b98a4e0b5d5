"""Stream fan-out: N concurrent identical stream requests against the real local LLM.

Run: ``.venv/bin/python benchmarks/stream_fanout.py [N ...]`` (or ``make bench``; needs the
local LLM, ``python -m vex_llm.local.install``). Starts llama-server (SmolLM2-135M, 2 slots,
2 threads) on 127.0.0.1, then for N = 1, 10, 100 streams the same request N times at once:

- uncached: straight to ``OpenAICompatibleProvider`` (N upstream requests; the server runs
  two at a time and queues the rest);
- cached, cold: through a fresh ``CachedProvider``: the first request streams from upstream,
  the others attach to it;
- cached, warm: the same again once the stream is stored: every request is a replay.

For each: upstream requests really sent (counted at the HTTP transport; the most seen in any
run), time to first chunk of the first and of the last subscriber, and total wall time, as
medians of 3 runs (1 run for uncached N=100). Temperature 0 and 32 tokens
keep runs short; the machine is shared, so absolute numbers are noisy.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter

import httpx

from vex_llm import (
    CachedProvider,
    LLMCacheConfig,
    LLMProvider,
    LLMRequest,
    OpenAICompatibleProvider,
)
from vex_llm.local import LlamaServer

SIZES = (1, 10, 100)
REQUEST = LLMRequest(
    prompt="Write one sentence about the sea.",
    system="You are a helpful assistant.",
    temperature=0.0,
    max_tokens=32,
    timeout=300.0,
)


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that really leave for the server."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200))
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def fan_out(provider: LLMProvider, n: int) -> tuple[float, float, float]:
    """(first TTFC, last TTFC, wall) in seconds for ``n`` concurrent identical streams."""
    started = time.perf_counter()

    async def one() -> float:
        first: float | None = None
        async for _chunk in provider.stream(REQUEST):
            if first is None:
                first = time.perf_counter() - started
        assert first is not None
        return first

    firsts = await asyncio.gather(*(one() for _ in range(n)))
    return min(firsts), max(firsts), time.perf_counter() - started


async def measure(server: LlamaServer, n: int, mode: str) -> tuple[int, float, float, float]:
    """One run: (upstream requests, first TTFC, last TTFC, wall)."""
    counting = CountingTransport()
    async with httpx.AsyncClient(transport=counting) as client:
        base = OpenAICompatibleProvider(server.base_url, model=server.alias, http_client=client)
        provider: LLMProvider = base
        if mode != "uncached":
            provider = CachedProvider(base, LLMCacheConfig.default())
            if mode == "cached, warm":
                await fan_out(provider, 1)  # store it first
                counting.paths.clear()
        first, last, wall = await fan_out(provider, n)
    return counting.paths["/v1/chat/completions"], first, last, wall


async def run(
    server: LlamaServer, sizes: tuple[int, ...]
) -> list[tuple[int, str, int, float, float, float]]:
    rows = []
    for n in sizes:
        for mode in ("uncached", "cached, cold", "cached, warm"):
            # Medians of 3 runs smooth out bursts from other work on the machine; the
            # uncached N=100 run (a queue ~100 answers long) is done once.
            repeats = 1 if (mode == "uncached" and n >= 100) else 3
            runs = [await measure(server, n, mode) for _ in range(repeats)]
            upstream = max(r[0] for r in runs)
            first, last, wall = (statistics.median(r[i] for r in runs) for i in (1, 2, 3))
            rows.append((n, mode, upstream, first, last, wall))
            print(f"  N={n:<4} {mode:<13} median wall {wall:.2f} s", flush=True)
    return rows


def table(rows: list[tuple[int, str, int, float, float, float]]) -> str:
    lines = [
        "|   N | mode         | upstream requests | first chunk, first (ms) "
        "| first chunk, last (ms) | wall (ms) |",
        "|----:|--------------|------------------:|------------------------:"
        "|-----------------------:|----------:|",
    ]
    for n, mode, upstream, first, last, wall in rows:
        lines.append(
            f"| {n:>3} | {mode:<12} | {upstream:>17} | {first * 1000:>23.1f} | "
            f"{last * 1000:>22.1f} | {wall * 1000:>9.1f} |"
        )
    return "\n".join(lines)


async def main(sizes: tuple[int, ...]) -> None:
    async with LlamaServer() as server:
        print(f"llama-server up at {server.base_url}; warming up", flush=True)
        async with OpenAICompatibleProvider(server.base_url, model=server.alias) as warm:
            await warm.complete(REQUEST)
        rows = await run(server, sizes)
    print()
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main(tuple(int(a) for a in sys.argv[1:]) or SIZES))
