"""The same fault schedule with and without resilience: success rate, latency, upstream load.

Run: ``.venv/bin/python benchmarks/resilience.py`` (about 40 s), 40 requests/s. One process: a
fault-injecting fake upstream (``tests/resilience/faulty_upstream.py``) and the proxy, both
under uvicorn on 127.0.0.1, and an open-loop client: requests leave at a fixed rate whatever
happens to earlier ones, so every configuration sees exactly the same requests at the same
moments. The schedule (times scaled down; the upstream's timeout is 0.5 s)::

    warm      0.5 s  20 distinct questions, all answered (they are asked again later)
    flaky     2.0 s  new questions; 30% of upstream calls fail with a 503
    429 burst 1.0 s  new questions; the next 30 upstream calls get 429 Retry-After: 0.1
    hung      0.5 s  new questions; the upstream accepts and never answers
    outage    2.0 s  the warm questions again (their entries are past their ttl); every call 503
    recovery  1.5 s  the warm questions; the upstream is back

Configurations: no resilience (every failure passed on); the proxy's defaults (retries for
429/5xx/connection failures within a 20% budget, a circuit breaker); the defaults plus
``stale_if_error``; the defaults plus a healthy fallback upstream. The breaker's ``open_for``
and the cache ttl are scaled down with the schedule (1 s, 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.resilience.faulty_upstream import FaultyUpstream
from tests.server.conftest import KEY_A, make_settings, serve
from vex_llm import LLMCacheConfig, MemoryStore
from vex_llm.resilience import BreakerPolicy
from vex_llm.server.app import create_app
from vex_llm.server.settings import UpstreamSettings

RATE = 40.0  # requests per second (one process runs client, proxy and upstream: keep it light)
WARM = 20  # the warm phase asks each of these once


@dataclass
class Phase:
    name: str
    seconds: float
    prompts: Callable[[int], str]
    setup: Callable[[FaultyUpstream], None]


def _mode(mode: str) -> Callable[[FaultyUpstream], None]:
    def setup(fake: FaultyUpstream) -> None:
        fake.mode = mode

    return setup


def _burst(fake: FaultyUpstream) -> None:
    fake.mode = "ok"
    fake.burst_429(30, "0.1")


def _new(tag: str) -> Callable[[int], str]:
    return lambda i: f"{tag} question {i}"


def _warm(i: int) -> str:
    return f"warm question {i % WARM}"


SCHEDULE = [
    Phase("warm", 0.5, _warm, _mode("ok")),
    Phase("flaky", 2.0, _new("flaky"), _mode("flaky")),
    Phase("429 burst", 1.0, _new("burst"), _burst),
    Phase("hung", 0.5, _new("hung"), _mode("hung")),
    Phase("outage", 2.0, _warm, _mode("down")),
    Phase("recovery", 1.5, _warm, _mode("ok")),
]


@dataclass
class Result:
    statuses: dict[str, list[int]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    upstream_calls: int = 0
    stale: int = 0
    fallback: int = 0


@contextlib.asynccontextmanager
async def _proxy(
    fake: FaultyUpstream, backup: FaultyUpstream, resilient: bool, options: dict[str, Any]
) -> AsyncIterator[str]:
    async with serve(fake.app) as primary_url, serve(backup.app) as backup_url:
        extra: dict[str, Any] = {"timeout": 0.5}
        if resilient:
            extra["breaker"] = BreakerPolicy(open_for=1.0)
            extra.update(options)
        else:
            extra.update(retry=None, breaker=None)
        upstreams = (
            UpstreamSettings("primary", "openai", primary_url + "/v1", "primary", **extra),
            UpstreamSettings("backup", "openai", backup_url + "/v1", "backup"),
        )
        settings = make_settings(
            upstreams=upstreams, cache=LLMCacheConfig(max_entries=10_000, ttl=2.0, tti=None)
        )
        app = create_app(settings, store=MemoryStore(10_000))
        async with serve(app) as root:
            yield root


async def run(resilient: bool, options: dict[str, Any]) -> Result:
    fake, backup = FaultyUpstream(seed=13, tag="primary"), FaultyUpstream(tag="backup")
    result = Result()
    async with (
        _proxy(fake, backup, resilient, options) as root,
        httpx.AsyncClient(
            base_url=root + "/v1",
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=10,
            # Idle connections are dropped before uvicorn's 5 s keep-alive would close them
            # under a request (a client-side race, not what this measures).
            limits=httpx.Limits(
                max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0
            ),
        ) as client,
    ):
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        # One request before the clock starts: connections and first-call costs are not
        # what this measures.
        warmup = {"model": "primary", "messages": [{"role": "user", "content": "warm-up"}]}
        await client.post("/chat/completions", json=warmup)
        start_calls = fake.total

        async def one(phase: str, prompt: str) -> None:
            body = {"model": "primary", "messages": [{"role": "user", "content": prompt}]}
            started = time.perf_counter()
            try:
                response = await client.post("/chat/completions", json=body)
            except httpx.TransportError:  # counted as a failure (status 0), never a crash
                result.latencies.append(time.perf_counter() - started)
                result.statuses[phase].append(0)
                return
            result.latencies.append(time.perf_counter() - started)
            result.statuses[phase].append(response.status_code)
            if response.headers.get("x-vex-cache") == "stale":
                result.stale += 1
            if response.headers.get("x-vex-upstream") == "backup":
                result.fallback += 1

        for phase in SCHEDULE:
            phase.setup(fake)
            result.statuses[phase.name] = []
            start = loop.time()
            n = int(phase.seconds * RATE)
            for i in range(n):
                await asyncio.sleep(max(0.0, start + i / RATE - loop.time()))
                tasks.append(asyncio.ensure_future(one(phase.name, phase.prompts(i))))
            await asyncio.sleep(max(0.0, start + phase.seconds - loop.time()))
        fake.release()
        await asyncio.gather(*tasks)
        result.upstream_calls = fake.total - start_calls
    return result


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    configs: list[tuple[str, bool, dict[str, Any]]] = [
        ("no resilience", False, {}),
        ("defaults (retry + breaker)", True, {}),
        ("defaults + stale_if_error", True, {"stale_if_error": 3600.0}),
        ("defaults + fallback", True, {"fallbacks": ("backup",)}),
    ]
    results = [(name, await run(resilient, options)) for name, resilient, options in configs]
    base_calls = results[0][1].upstream_calls
    phases = [p.name for p in SCHEDULE]
    print("success rate by phase (2xx / requests):")
    print("| configuration | " + " | ".join(phases) + " | all |")
    print("|---|" + "---:|" * (len(phases) + 1))
    for name, r in results:
        cells = []
        for phase in phases:
            s = r.statuses[phase]
            cells.append(f"{100 * s.count(200) / len(s):.0f}%")
        every = [c for s in r.statuses.values() for c in s]
        cells.append(f"{100 * every.count(200) / len(every):.1f}%")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("| configuration | p50 ms | p99 ms | upstream calls | vs none | stale | fallback |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results:
        extra = (r.upstream_calls - base_calls) / base_calls * 100
        print(
            f"| {name} | {_p(r.latencies, 0.5):.1f} | {_p(r.latencies, 0.99):.0f} | "
            f"{r.upstream_calls} | {extra:+.0f}% | {r.stale} | {r.fallback} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
