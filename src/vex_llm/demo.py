"""The demo: a provider wrapped in the cache, showing a miss, a hit, coalescing and the stats."""

from __future__ import annotations

import asyncio
import time

from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.provider import CachedProvider
from vex_llm.models import LLMRequest
from vex_llm.providers.mock import MockProvider

__all__ = ["main", "run_demo"]


async def run_demo(latency: float = 0.2) -> str:
    """Run the demo against a mock upstream with ``latency`` seconds per call; return the text."""
    lines: list[str] = []
    upstream = MockProvider.smart(latency=latency)
    async with CachedProvider(upstream, LLMCacheConfig.default()) as cached:
        request = LLMRequest.simple("Please summarize the design of a response cache.")
        for label in ("first call ", "second call"):
            started = time.perf_counter()
            result = await cached.complete_result(request)
            elapsed = (time.perf_counter() - started) * 1000
            lines.append(
                f"{label}: {result.outcome:<9} {elapsed:8.3f} ms  "
                f"upstream calls so far: {upstream.calls}  -> {result.response.content[:40]!r}"
            )

        fresh = LLMRequest.simple("Explore fifty identical questions at once.")
        started = time.perf_counter()
        results = await asyncio.gather(*(cached.complete_result(fresh) for _ in range(50)))
        elapsed = (time.perf_counter() - started) * 1000
        outcomes = {o: sum(r.outcome == o for r in results) for o in ("miss", "coalesced")}
        lines.append(
            f"50 concurrent identical requests: {outcomes['miss']} miss, "
            f"{outcomes['coalesced']} coalesced, {elapsed:.1f} ms, "
            f"upstream calls so far: {upstream.calls}"
        )
        stats = cached.stats()
        lines.append(
            f"stats: hits={stats.hits} misses={stats.misses} coalesced={stats.coalesced} "
            f"hit_rate={stats.hit_rate:.2f} entries={stats.entries} bytes={stats.bytes} "
            f"tokens_saved={stats.tokens_saved}"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the demo."""
    print(asyncio.run(run_demo()))
