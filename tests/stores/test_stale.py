"""Every store keeps stale entries the same way: for ttl + the stale-if-error grace, with
``stored_at`` intact, so the cache can judge them stale and answer with them."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ManualClock
from tests.resilience.scripted import ScriptedProvider
from vex_llm import CachedProvider, LLMCacheConfig, LLMRequest, ServerError

from .conftest import StoreFactory

REQUEST = LLMRequest(prompt="stale?", temperature=0.0)


async def test_a_stale_entry_answers_a_failing_upstream(make_store: StoreFactory) -> None:
    store = await make_store(max_entries=100)
    clock = ManualClock()
    config = LLMCacheConfig(ttl=60, tti=None, stale_if_error=600)
    upstream = ScriptedProvider(["kept"], then=ServerError(503))
    cached = CachedProvider(upstream, config, store=store, clock=clock)
    await cached.complete(REQUEST)
    clock.advance(300)  # the cache's clock: past the ttl, within the grace
    result = await cached.complete_result(REQUEST)
    assert (result.outcome, result.response.content, result.age) == ("stale", "kept", 300.0)


async def test_past_ttl_plus_grace_the_store_has_let_it_go(make_store: StoreFactory) -> None:
    store = await make_store(max_entries=100)
    config = LLMCacheConfig(ttl=0.2, tti=None, stale_if_error=0.3)
    upstream = ScriptedProvider(["kept"], then=ServerError(503))
    cached = CachedProvider(upstream, config, store=store)
    await cached.complete(REQUEST)
    await asyncio.sleep(0.3)  # the store's own clock: past the ttl, within the grace
    assert (await cached.complete_result(REQUEST)).outcome == "stale"
    await asyncio.sleep(0.35)
    assert await store.get(cached.key_for(REQUEST)) is None
    with pytest.raises(ServerError):
        await cached.complete(REQUEST)
