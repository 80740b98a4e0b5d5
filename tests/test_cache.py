"""CachedProvider: hits and misses, per-request controls, errors, expiry, stats."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from vex_llm import (
    CacheControl,
    CachedProvider,
    CacheMiss,
    InputLimits,
    InputTooLarge,
    LLMCacheConfig,
    LLMRequest,
    MockProvider,
    ServerError,
)
from vex_llm.cache.config import effective_expiry
from vex_llm.cache.streaming import iterate
from vex_llm.embeddings import EmbeddingRequest

from .conftest import ManualClock


async def test_repeat_is_one_hit_one_miss(cached: CachedProvider) -> None:
    """The original crate's first test."""
    request = LLMRequest.simple("test prompt")
    first = await cached.complete(request)
    second = await cached.complete(request)
    assert first.content == second.content
    assert (first.cached, second.cached) == (False, True)
    stats = cached.stats()
    assert (stats.hits, stats.misses) == (1, 1)
    assert stats.hit_rate == 0.5


async def test_two_prompts_are_two_misses() -> None:
    """The original crate's second test."""
    cached = CachedProvider.wrap(MockProvider.smart())
    await cached.complete(LLMRequest.simple("prompt 1"))
    await cached.complete(LLMRequest.simple("prompt 2"))
    stats = cached.stats()
    assert (stats.hits, stats.misses) == (0, 2)
    assert stats.hit_rate == 0.0


async def test_hit_does_not_call_upstream_and_saves_tokens(
    cached: CachedProvider, mock: MockProvider
) -> None:
    request = LLMRequest(prompt="p")
    fresh = await cached.complete(request)
    for _ in range(3):
        await cached.complete(request)
    assert mock.calls == 1
    assert cached.stats().tokens_saved == 3 * fresh.usage.total_tokens


async def test_tenants_never_share_an_entry(mock: MockProvider) -> None:
    cached = CachedProvider.wrap(mock)
    await cached.complete(LLMRequest(prompt="same", tenant_id="a"))
    result = await cached.complete_result(LLMRequest(prompt="same", tenant_id="b"))
    assert result.outcome == "miss"
    assert mock.calls == 2


async def test_lookup_reports_outcome_key_and_age(clock: ManualClock) -> None:
    cached = CachedProvider(MockProvider.constant("x"), clock=clock)
    request = LLMRequest(prompt="p")
    miss = await cached.complete_result(request)
    clock.advance(12.5)
    hit = await cached.complete_result(request)
    assert (miss.outcome, hit.outcome) == ("miss", "hit")
    assert miss.key == hit.key == cached.key_for(request)
    assert hit.age == 12.5
    assert miss.age is None


async def test_errors_are_never_cached() -> None:
    mock = MockProvider.constant("ok", error=ServerError(500, "boom"), fail_times=1)
    cached = CachedProvider.wrap(mock)
    with pytest.raises(ServerError):
        await cached.complete(LLMRequest(prompt="p"))
    assert cached.count() == 0
    assert (await cached.complete(LLMRequest(prompt="p"))).content == "ok"
    assert mock.calls == 2
    assert cached.stats().errors == 1


async def test_no_store_answers_but_stores_nothing(cached: CachedProvider) -> None:
    await cached.complete(LLMRequest(prompt="p", cache=CacheControl(no_store=True)))
    assert cached.count() == 0


async def test_no_cache_skips_the_read_and_refreshes_the_entry() -> None:
    mock = MockProvider(responses=["old", "new"])
    cached = CachedProvider.wrap(mock)
    await cached.complete(LLMRequest(prompt="p"))
    fresh = await cached.complete_result(LLMRequest(prompt="p", cache=CacheControl(no_cache=True)))
    assert (fresh.outcome, fresh.response.content) == ("bypass", "new")
    assert (await cached.complete(LLMRequest(prompt="p"))).content == "new"
    assert cached.stats().bypasses == 1


async def test_only_if_cached_never_calls_upstream(
    cached: CachedProvider, mock: MockProvider
) -> None:
    only = LLMRequest(prompt="p", cache=CacheControl(only_if_cached=True))
    with pytest.raises(CacheMiss):
        await cached.complete(only)
    assert mock.calls == 0
    await cached.complete(LLMRequest(prompt="p"))
    assert (await cached.complete(only)).cached
    assert cached.stats().only_if_cached_misses == 1


async def test_input_too_large_is_raised_before_any_lookup(mock: MockProvider) -> None:
    config = LLMCacheConfig(limits=InputLimits(max_prompt_bytes=8))
    cached = CachedProvider(mock, config)
    with pytest.raises(InputTooLarge):
        await cached.complete(LLMRequest(prompt="x" * 9))
    assert mock.calls == 0
    assert cached.stats().misses == 0


async def test_ttl_expires_entries_with_real_time() -> None:
    mock = MockProvider.constant("x")
    cached = CachedProvider(mock, LLMCacheConfig(ttl=0.15, tti=None))
    request = LLMRequest(prompt="p")
    await cached.complete(request)
    assert cached.count() == 1
    await asyncio.sleep(0.25)
    assert cached.count() == 0
    assert not (await cached.complete(request)).cached
    assert mock.calls == 2
    assert cached.stats().evictions["expired"] >= 1


async def test_tti_expires_idle_entries_but_not_used_ones() -> None:
    cached = CachedProvider(MockProvider.constant("x"), LLMCacheConfig(ttl=10, tti=0.3))
    used, idle = LLMRequest(prompt="used"), LLMRequest(prompt="idle")
    await cached.complete(used)
    await cached.complete(idle)
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert (await cached.complete(used)).cached
    assert cached.count() == 1
    assert not (await cached.complete(idle)).cached


async def test_request_ttl_only_shortens() -> None:
    cached = CachedProvider(MockProvider.constant("x"), LLMCacheConfig(ttl=0.2, tti=None))
    longer = LLMRequest(prompt="a", cache=CacheControl(ttl=timedelta(hours=1)))
    shorter = LLMRequest(prompt="b", cache=CacheControl(ttl=0.05))
    await cached.complete(longer)
    await cached.complete(shorter)
    await asyncio.sleep(0.1)
    assert cached.count() == 1  # the short one is gone
    assert cached.stats().evictions == {"size": 0, "expired": 1, "explicit": 0}
    await asyncio.sleep(0.2)
    assert cached.count() == 0  # the configured ttl still bounds the long request
    assert cached.stats().evictions["expired"] == 2


def test_effective_expiry_is_the_shorter_of_each() -> None:
    config = LLMCacheConfig(ttl=100, tti=50)
    assert effective_expiry(config, CacheControl()) == (100, 50)
    assert effective_expiry(config, CacheControl(ttl=10, tti=500)) == (10, 50)
    assert effective_expiry(LLMCacheConfig(ttl=None, tti=None), CacheControl(tti=5)) == (None, 5)


async def test_max_entries_bounds_size_exactly_and_keeps_the_newest() -> None:
    # Which older entries go is the store's policy (tests/test_admission.py).
    cached = CachedProvider(MockProvider.constant("x"), LLMCacheConfig(max_entries=3))
    for i in range(5):
        await cached.complete(LLMRequest(prompt=f"p{i}"))
    assert cached.count() == 3
    stats = cached.stats()
    assert stats.entries == 3
    assert stats.evictions["size"] == 2
    assert (await cached.complete_result(LLMRequest(prompt="p4"))).outcome == "hit"


async def test_max_bytes_bounds_total_bytes() -> None:
    config = LLMCacheConfig(max_entries=None, max_bytes=2000)
    cached = CachedProvider(MockProvider.constant("y" * 500), config)
    for i in range(10):
        await cached.complete(LLMRequest(prompt=f"p{i}"))
    stats = cached.stats()
    assert 0 < stats.bytes <= 2000
    assert stats.entries == 3  # each entry is ~600 bytes of JSON
    assert stats.evictions["size"] == 7


async def test_entry_larger_than_the_whole_cache_is_not_stored() -> None:
    config = LLMCacheConfig(max_entries=10, max_bytes=100)
    cached = CachedProvider(MockProvider.constant("z" * 500), config)
    await cached.complete(LLMRequest(prompt="p"))
    assert cached.count() == 0
    assert cached.stats().bytes == 0


async def test_clear_empties_and_keeps_counters(cached: CachedProvider) -> None:
    await cached.complete(LLMRequest(prompt="a"))
    await cached.complete(LLMRequest(prompt="b"))
    cached.clear()
    assert cached.count() == 0
    stats = cached.stats()
    assert stats.misses == 2
    assert stats.bytes == 0
    assert stats.evictions["explicit"] == 2
    await cached.aclear()
    assert await cached.acount() == 0
    assert (await cached.astats()).entries == 0


async def test_name_and_identity_show_the_wrapped_provider(mock: MockProvider) -> None:
    cached = CachedProvider.wrap(mock)
    assert cached.name() == "cached(mock:mock)"
    assert cached.cache_identity() == mock.cache_identity()
    assert await cached.is_available()


async def test_stream_passes_through(cached: CachedProvider, mock: MockProvider) -> None:
    chunks = [c async for c in cached.stream(LLMRequest(prompt="p"))]
    assert "".join(c.delta for c in chunks) == "cached response"
    assert mock.calls == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"max_entries": 0}, ValueError),
        ({"max_entries": -5}, ValueError),
        ({"max_bytes": 0}, ValueError),
        ({"ttl": 0}, ValueError),
        ({"ttl": -1.0}, ValueError),
        ({"tti": timedelta(seconds=-1)}, ValueError),
        ({"ttl": "1h"}, TypeError),
        ({"max_entries": 1.5}, TypeError),
        ({"max_entries": None, "max_bytes": None}, ValueError),
    ],
)
def test_bad_config_fails_at_construction(fields: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        LLMCacheConfig(**fields)  # type: ignore[arg-type]


def test_presets() -> None:
    assert LLMCacheConfig() == LLMCacheConfig.default()
    default, aggressive, conservative = (
        LLMCacheConfig.default(),
        LLMCacheConfig.aggressive(),
        LLMCacheConfig.conservative(),
    )
    assert (default.max_entries, default.ttl, default.tti) == (1000, 3600, 1800)
    assert (aggressive.max_entries, aggressive.ttl, aggressive.tti) == (10_000, 86_400, None)
    assert (conservative.max_entries, conservative.ttl, conservative.tti) == (100, 300, 60)
    assert LLMCacheConfig(ttl=timedelta(minutes=2)).ttl == 120.0


def test_wrapping_a_non_provider_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="LLMProvider"):
        CachedProvider("not a provider")  # type: ignore[arg-type]


async def test_an_empty_store_with_len_is_still_the_store_used(mock: MockProvider) -> None:
    # A store class may define __len__; an empty one is falsy, yet it is the store asked for.
    from vex_llm.cache.stores import MemoryStore

    class SizedStore(MemoryStore):
        def __len__(self) -> int:
            return self.count_now()

    store = SizedStore(10)
    cached = CachedProvider(mock, LLMCacheConfig(), store=store)
    assert cached.store is store
    await cached.complete(LLMRequest(prompt="kept in the store given"))
    assert len(store) == 1


async def test_a_joiner_gets_its_own_timeout_not_the_leaders() -> None:
    # timeout is not part of the key, so a request with a short timeout may join a slow call
    # started by one without: it must still fail after its own timeout, as typed Timeout.
    from vex_llm import Timeout

    mock = MockProvider.constant("slow answer", latency=1.0)
    cached = CachedProvider(mock, LLMCacheConfig())
    leader = asyncio.create_task(cached.complete(LLMRequest(prompt="p")))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Timeout):
        await cached.complete(LLMRequest(prompt="p", timeout=0.1))
    assert loop.time() - started < 0.6
    assert (await leader).content == "slow answer"  # the shared call went on
    assert mock.calls == 1


@pytest.mark.parametrize("bad", ["a prompt", None, {"prompt": "p"}])
async def test_a_non_request_is_a_type_error(cached: CachedProvider, bad: object) -> None:
    with pytest.raises(TypeError, match="must be an LLMRequest"):
        await cached.complete(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an LLMRequest"):
        await cached.complete_result(bad)  # type: ignore[arg-type]


async def test_clearing_a_tenant_forgets_its_answers_streams_and_vectors(
    mock: MockProvider,
) -> None:
    cached = CachedProvider.wrap(mock)

    async def ask(tenant: str | None) -> tuple[bool, bool, int]:
        answer = await cached.complete(LLMRequest(prompt="p", tenant_id=tenant))
        stream = await cached.open_stream(LLMRequest(prompt="s", tenant_id=tenant))
        async for _ in iterate(stream):
            pass
        vectors = await cached.embed_result(EmbeddingRequest(["e1", "e2"], tenant_id=tenant))
        return answer.cached, stream.outcome == "hit", vectors.hits

    for tenant in ("a", "b", None):
        assert await ask(tenant) == (False, False, 0)
    assert await cached.aclear_tenant("a") == 4  # one answer, one stream, two vectors
    assert await cached.aclear_tenant("a") == 0
    assert await ask("a") == (False, False, 0)
    assert await ask("b") == (True, True, 2)
    assert await ask(None) == (True, True, 2)
    assert cached.count() == 12
