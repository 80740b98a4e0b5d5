"""The demo shows a miss, a hit, coalescing and the stats."""

from __future__ import annotations

from vex_llm.demo import run_demo


async def test_demo_shows_miss_hit_and_coalescing() -> None:
    text = await run_demo(latency=0.01)
    lines = text.splitlines()
    assert "miss" in lines[0]
    assert "hit" in lines[1]
    assert "1 miss, 49 coalesced" in lines[2]
    assert "hits=1 misses=2 coalesced=49" in lines[3]
