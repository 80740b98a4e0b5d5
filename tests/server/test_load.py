"""A bounded load test on loopback: 50 concurrent clients mixing hits, misses and streams.

Runs for ``VEX_LLM_LOAD_SECONDS`` (default 8 s). Every request must succeed (200, and every
stream ends with ``[DONE]``), every outcome must show up, and the process's resident memory
must stay flat between the first and the second half of the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.server.conftest import KEY_A, KEY_B, MODEL, proxy
from vex_llm import MockProvider

CLIENTS = 50
SECONDS = float(os.environ.get("VEX_LLM_LOAD_SECONDS", "8"))
HOT_PROMPTS = [f"hot question {i}" for i in range(20)]


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def test_fifty_clients_mixing_hits_misses_and_streams_never_fail() -> None:
    upstream = MockProvider.smart(latency=0.005, chunk_size=16)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    rss: list[int] = []
    async with proxy(upstream) as base:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
            deadline = time.monotonic() + SECONDS

            async def client(n: int) -> None:
                rng = random.Random(n)
                key = KEY_A if n % 2 else KEY_B
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    roll = rng.random()
                    text = rng.choice(HOT_PROMPTS) if roll < 0.7 else f"fresh {n}-{i}"
                    stream = rng.random() < 0.25
                    doc = {"model": MODEL, "stream": stream,
                           "messages": [{"role": "user", "content": text}]}  # fmt: skip
                    headers = {"Authorization": f"Bearer {key}"}
                    try:
                        if stream:
                            async with http.stream(
                                "POST", "/chat/completions", json=doc, headers=headers
                            ) as r:
                                body = (await r.aread()).decode()
                                ok = r.status_code == 200 and body.endswith("data: [DONE]\n\n")
                        else:
                            r = await http.post("/chat/completions", json=doc, headers=headers)
                            ok = r.status_code == 200 and bool(r.json()["choices"])
                    except httpx.HTTPError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if not ok:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                    outcomes[r.headers.get("x-vex-cache", "?")] += 1

            async def sampler() -> None:
                while time.monotonic() < deadline:
                    rss.append(rss_bytes())
                    await asyncio.sleep(0.25)

            await asyncio.gather(sampler(), *(client(n) for n in range(CLIENTS)))
    total = sum(outcomes.values())
    print(f"\n{total} requests in {SECONDS:.0f} s ({total / SECONDS:.0f}/s): {dict(outcomes)}")
    assert failures == []
    assert total > CLIENTS * 5
    assert outcomes["hit"] > 0
    assert outcomes["miss"] > 0
    half = len(rss) // 2
    first, second = max(rss[:half]), max(rss[half:])
    # Misses fill a bounded cache (1000 entries): growth must level off, not climb.
    assert second - first < 40 * 1024 * 1024, (first, second)
