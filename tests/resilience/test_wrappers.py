"""The wrappers as thin I/O: retries, the breaker and fallbacks around a scripted provider."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from tests.resilience.scripted import REQUEST, FakeClock, ScriptedProvider
from vex_llm import (
    CacheControl,
    CachedProvider,
    ConnectionFailed,
    LLMCacheConfig,
    LLMRequest,
    MemoryStore,
    NotAvailable,
    RateLimited,
    RequestFailed,
    ServerError,
    Timeout,
)
from vex_llm.resilience import (
    BreakerPolicy,
    CircuitBreaker,
    FallbackProvider,
    RetryBudget,
    RetryingProvider,
    RetryPolicy,
)


def retrying(inner: ScriptedProvider, clock: FakeClock, **policy: object) -> RetryingProvider:
    return RetryingProvider(
        inner,
        RetryPolicy(**policy),  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )


async def test_retries_5xx_and_connection_failures_then_answers() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(503), ConnectionFailed("refused")])
    provider = retrying(inner, clock, base_delay=0.2)
    assert (await provider.complete(REQUEST)).content == "ok"
    assert inner.calls == 3
    assert clock.slept == [0.1, 0.2]  # full jitter (rand 0.5) of 0.2 then 0.4
    assert provider.counters.retries == 2


@pytest.mark.parametrize(
    "error", [RequestFailed(400, "bad"), Timeout("slow"), NotAvailable("open")]
)
async def test_never_retries_4xx_timeouts_or_an_open_breaker(error: Exception) -> None:
    inner = ScriptedProvider([error])  # type: ignore[list-item]
    provider = retrying(inner, FakeClock())
    with pytest.raises(type(error)):
        await provider.complete(REQUEST)
    assert inner.calls == 1


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    inner = ScriptedProvider([ServerError(500), ServerError(502), ServerError(503)])
    with pytest.raises(ServerError) as caught:
        await retrying(inner, FakeClock(), max_attempts=3).complete(REQUEST)
    assert caught.value.status == 503
    assert inner.calls == 3


async def test_retry_after_is_slept_exactly() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([RateLimited(retry_after=1.5)])
    await retrying(inner, clock).complete(REQUEST)
    assert clock.slept == [1.5]


async def test_a_503_retry_after_is_slept_too() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(503, retry_after=2.5)])
    await retrying(inner, clock).complete(REQUEST)
    assert clock.slept == [2.5]


async def test_a_retry_after_longer_than_the_deadline_returns_the_error_at_once() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([RateLimited(retry_after=5.0)])
    provider = retrying(inner, clock)
    with pytest.raises(RateLimited):
        await provider.complete(LLMRequest(prompt="hi", timeout=2.0))
    assert clock.slept == []
    assert inner.calls == 1
    assert provider.counters.gave_up_early == 1


async def test_the_request_timeout_bounds_every_attempt_and_the_waits() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(500)] * 5)
    provider = retrying(inner, clock, max_attempts=10, base_delay=2.0, max_delay=2.0)
    with pytest.raises(ServerError):
        await provider.complete(LLMRequest(prompt="hi", timeout=3.5))
    # Each attempt is sent with the time left; backoff 1 s each (rand 0.5 of 2 s).
    assert [r.timeout for r in inner.requests] == [3.5, 2.5, 1.5, 0.5]
    assert clock.now - 1000.0 == 3.0


async def test_the_policy_timeout_applies_to_requests_without_one() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(500)] * 5)
    provider = retrying(inner, clock, max_attempts=10, base_delay=2.0, max_delay=2.0, timeout=2.5)
    with pytest.raises(ServerError):
        await provider.complete(REQUEST)
    assert [r.timeout for r in inner.requests] == [2.5, 1.5, 0.5]


async def test_a_hung_attempt_is_cut_at_the_deadline() -> None:
    class Hung(ScriptedProvider):
        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            self.calls += 1
            await asyncio.sleep(30)

    provider = RetryingProvider(Hung(), RetryPolicy(on_timeout=True))
    with pytest.raises(Timeout):
        await provider.complete(LLMRequest(prompt="hi", timeout=0.05))


async def test_the_budget_caps_retries_during_an_outage() -> None:
    clock = FakeClock()
    inner = ScriptedProvider(then=ServerError(500))
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, clock=clock)
    provider = RetryingProvider(
        inner, RetryPolicy(max_attempts=5), budget=budget, clock=clock, sleep=clock.sleep
    )
    for _ in range(100):
        with pytest.raises(ServerError):
            await provider.complete(REQUEST)
    # Without the budget: 500 upstream calls. With it: 100 plus at most 10% more.
    assert inner.calls <= 110
    assert provider.counters.retries == inner.calls - 100
    assert provider.counters.budget_exhausted > 0


async def test_stream_is_retried_before_its_first_chunk() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(503)])
    provider = retrying(inner, clock)
    chunks = [c async for c in provider.stream(REQUEST)]
    assert "".join(c.delta for c in chunks) == "ok"
    assert inner.calls == 2


async def test_stream_is_never_retried_after_its_first_chunk() -> None:
    inner = ScriptedProvider([ServerError(503)], fail_after_first=True)
    provider = retrying(inner, FakeClock())
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(REQUEST):
            seen.append(chunk.delta)

    with pytest.raises(ServerError):
        await consume()
    assert seen == ["partial "]
    assert inner.calls == 1


BREAKER = BreakerPolicy(min_calls=4, failure_rate=0.5, window=10.0, open_for=5.0)


async def test_breaker_opens_fails_fast_probes_and_closes() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(500)] * 4 + [ServerError(500)])
    breaker = CircuitBreaker(inner, BREAKER, clock=clock)
    for _ in range(4):
        with pytest.raises(ServerError):
            await breaker.complete(REQUEST)
    assert breaker.state == "open"
    assert not await breaker.is_available()
    with pytest.raises(NotAvailable) as caught:
        await breaker.complete(REQUEST)
    assert caught.value.retry_after == 5.0
    assert inner.calls == 4  # fails fast: the backend is not called
    clock.advance(5)
    with pytest.raises(ServerError):
        await breaker.complete(REQUEST)  # the probe fails: open again, for 10 s
    assert breaker.state == "open"
    clock.advance(10)
    assert (await breaker.complete(REQUEST)).content == "ok"
    assert breaker.state == "closed"
    assert breaker.rejected == 1


async def test_breaker_ignores_4xx_and_429_by_default() -> None:
    inner = ScriptedProvider([RequestFailed(400)] * 5 + [RateLimited()] * 5)
    breaker = CircuitBreaker(inner, BREAKER, clock=FakeClock())
    for _ in range(10):
        with pytest.raises((RequestFailed, RateLimited)):
            await breaker.complete(REQUEST)
    assert breaker.state == "closed"
    counting = CircuitBreaker(
        ScriptedProvider([RateLimited()] * 4),
        BreakerPolicy(min_calls=4, count_rate_limited=True),
        clock=FakeClock(),
    )
    for _ in range(4):
        with pytest.raises(RateLimited):
            await counting.complete(REQUEST)
    assert counting.state == "open"


async def test_breaker_half_open_lets_exactly_one_concurrent_probe_through() -> None:
    clock = FakeClock()
    gate = asyncio.Event()

    class Slow(ScriptedProvider):
        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            await gate.wait()
            return await super().complete(request)

    inner = Slow([ServerError(500)] * 4)
    breaker = CircuitBreaker(inner, BREAKER, clock=clock)
    gate.set()
    for _ in range(4):
        with pytest.raises(ServerError):
            await breaker.complete(REQUEST)
    gate.clear()
    clock.advance(5)
    probe = asyncio.create_task(breaker.complete(REQUEST))
    await asyncio.sleep(0)
    results = await asyncio.gather(
        *(breaker.complete(REQUEST) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, NotAvailable) for r in results)
    gate.set()
    assert (await probe).content == "ok"
    assert breaker.state == "closed"


async def test_breaker_counts_a_stream_by_how_it_ended() -> None:
    clock = FakeClock()
    inner = ScriptedProvider([ServerError(500)] * 4, fail_after_first=True)
    breaker = CircuitBreaker(inner, BREAKER, clock=clock)
    for _ in range(4):
        with pytest.raises(ServerError):
            async for _chunk in breaker.stream(REQUEST):
                pass
    assert breaker.state == "open"
    clock.advance(5)
    # A consumer that stops at the final chunk (as the cache does) still closes the circuit.
    async with aclosing(breaker.stream(REQUEST)) as stream:
        async for chunk in stream:
            if chunk.is_final:
                break
    assert breaker.state == "closed"


async def test_fallback_answers_on_a_retryable_failure_or_an_open_breaker() -> None:
    primary = ScriptedProvider([ServerError(500)], label="a")
    secondary = ScriptedProvider(then="from b", label="b")
    chain = FallbackProvider([primary, secondary])
    assert (await chain.complete(REQUEST)).content == "from b"
    assert (await chain.complete(REQUEST)).content == "ok"  # a is back
    assert chain.answered == [1, 1]
    breaker = CircuitBreaker(ScriptedProvider(), BREAKER, clock=FakeClock())
    for _ in range(4):
        breaker.circuit.record(breaker.circuit.acquire(), "failure")  # type: ignore[arg-type]
    chain = FallbackProvider([breaker, secondary])
    assert (await chain.complete(REQUEST)).content == "from b"


async def test_fallback_does_not_hide_a_client_error_and_raises_the_last_failure() -> None:
    chain = FallbackProvider([ScriptedProvider([RequestFailed(400)]), ScriptedProvider()])
    with pytest.raises(RequestFailed):
        await chain.complete(REQUEST)
    chain = FallbackProvider(
        [ScriptedProvider([ServerError(500)]), ScriptedProvider([ConnectionFailed("down")])]
    )
    with pytest.raises(ConnectionFailed):
        await chain.complete(REQUEST)


async def test_fallback_stream_switches_only_before_the_first_chunk() -> None:
    chain = FallbackProvider(
        [ScriptedProvider([ServerError(500)], label="a"), ScriptedProvider(then="b", label="b")]
    )
    assert "".join([c.delta async for c in chain.stream(REQUEST)]) == "b"
    late = FallbackProvider(
        [
            ScriptedProvider([ServerError(500)], label="a", fail_after_first=True),
            ScriptedProvider(label="b"),
        ]
    )
    with pytest.raises(ServerError):
        async for _chunk in late.stream(REQUEST):
            pass
    assert late.answered == [1, 0]


async def test_fallback_shares_the_request_deadline() -> None:
    clock = FakeClock()

    class Slow(ScriptedProvider):
        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            clock.advance(3)
            return await super().complete(request)

    primary = Slow([Timeout("slow")])
    secondary = ScriptedProvider()
    chain = FallbackProvider([primary, secondary], clock=clock)
    await chain.complete(LLMRequest(prompt="hi", timeout=5.0))
    assert secondary.requests[0].timeout == 2.0


async def test_a_fallback_answer_is_never_cached_as_the_primarys() -> None:
    """Caches inside the chain store each answer under the provider that produced it."""
    store = MemoryStore(100)
    config = LLMCacheConfig(ttl=3600, tti=None)
    primary = ScriptedProvider([ServerError(500)], then="from a", label="a")
    secondary = ScriptedProvider(then="from b", label="b")
    cache_a = CachedProvider(primary, config, store=store)
    cache_b = CachedProvider(secondary, config, store=store)
    chain = FallbackProvider([cache_a, cache_b])
    assert (await chain.complete(REQUEST)).content == "from b"  # a failed: b answered
    # b's answer is b's: asking b again is a hit...
    assert (await cache_b.complete_result(REQUEST)).outcome == "hit"
    # ...while a (recovered) is asked afresh and its own answer is kept as a's.
    assert (await chain.complete(REQUEST)).content == "from a"
    assert (await cache_a.complete_result(REQUEST)).response.content == "from a"
    assert primary.calls == 2
    # A cache around the whole chain keys by every member: never by a's identity alone.
    around = CachedProvider(FallbackProvider([primary, secondary]), config, store=store)
    assert around.key_for(REQUEST) != cache_a.key_for(REQUEST)
    assert around.key_for(REQUEST) != cache_b.key_for(REQUEST)


async def test_wrappers_stack_with_the_cache_in_any_order_and_keep_its_identity() -> None:
    clock = FakeClock()
    base = ScriptedProvider([ServerError(500)], label="a")
    stacked = CachedProvider(
        RetryingProvider(CircuitBreaker(base, clock=clock), clock=clock, sleep=clock.sleep)
    )
    plain = CachedProvider(ScriptedProvider(label="a"))
    assert stacked.key_for(REQUEST) == plain.key_for(REQUEST)
    assert stacked.name() == "cached(retrying(breaker(a)))"
    assert (await stacked.complete(REQUEST)).content == "ok"
    assert (await stacked.complete_result(REQUEST)).outcome == "hit"
    inside = RetryingProvider(CachedProvider(base), clock=clock, sleep=clock.sleep)
    no_cache = LLMRequest(prompt="hi", cache=CacheControl(no_cache=True))
    assert (await inside.complete(no_cache)).content == "ok"
    await stacked.aclose()
    assert base.closed
