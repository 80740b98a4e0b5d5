"""The proxy's upstreams with their resilience: guarded, cached, chained to their fallbacks.

Per configured upstream: ``CachedProvider(RetryingProvider(CircuitBreaker(upstream)))``, the
cache with the upstream's stale-if-error and stale-while-revalidate; the breaker is inside the
retries, so it sees every attempt and an open circuit stops the retries at once. Per model
name clients ask for: a ``FallbackProvider`` over that upstream's cache and then its
fallbacks' caches, so each answer is looked up and stored under the identity of the upstream
that produced it (and a stale answer of the upstream asked for comes before any fallback's).
``ResilienceCollector`` shows what the wrappers did on ``/metrics``, read from their counters
at scrape time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vex_llm.cache.provider import CachedProvider
from vex_llm.cache.stores.base import CacheStore
from vex_llm.pricing import Price
from vex_llm.provider import LLMProvider
from vex_llm.resilience import CircuitBreaker, FallbackProvider, RetryingProvider
from vex_llm.server.settings import Settings, UpstreamSettings

__all__ = ["Guarded", "ResilienceCollector", "build_guarded", "fallback_chains"]


@dataclass(frozen=True, slots=True)
class Guarded:
    """One upstream as the proxy serves it: its cache, and the wrappers inside it (if on)."""

    name: str
    cached: CachedProvider
    retry: RetryingProvider | None
    breaker: CircuitBreaker | None


def _guard(
    provider: LLMProvider, upstream: UpstreamSettings
) -> tuple[LLMProvider, RetryingProvider | None, CircuitBreaker | None]:
    breaker = retry = None
    if upstream.breaker is not None:
        provider = breaker = CircuitBreaker(provider, upstream.breaker)
    if upstream.retry is not None:
        policy = upstream.retry
        if policy.timeout is None:
            # Retries and their waits stay within the upstream's own timeout.
            policy = dataclasses.replace(policy, timeout=upstream.timeout)
        provider = retry = RetryingProvider(provider, policy)
    return provider, retry, breaker


def build_guarded(
    settings: Settings,
    providers: Mapping[str, LLMProvider],
    store: CacheStore,
    clock: Callable[[], float],
    prices: Mapping[str, Price | None] | None = None,
) -> dict[str, Guarded]:
    """Each upstream of ``settings`` guarded and cached in ``store`` (model name -> it), each
    cache counting dollars at its upstream's price in ``prices`` (none: unknown)."""
    prices = prices or {}
    guarded = {}
    for upstream in settings.upstreams:
        provider, retry, breaker = _guard(providers[upstream.name], upstream)
        config = settings.cache
        config = dataclasses.replace(
            config,
            stale_if_error=upstream.stale_if_error or config.stale_if_error,
            stale_while_revalidate=upstream.stale_while_revalidate or config.stale_while_revalidate,
        )
        cached = CachedProvider(
            provider, config, store=store, clock=clock, price=prices.get(upstream.name)
        )
        guarded[upstream.name] = Guarded(upstream.name, cached, retry, breaker)
    return guarded


def fallback_chains(
    settings: Settings, guarded: Mapping[str, Guarded]
) -> dict[str, FallbackProvider[CachedProvider]]:
    """Per model name, its upstream's cache followed by its fallbacks' caches."""
    return {
        u.name: FallbackProvider([guarded[n].cached for n in (u.name, *u.fallbacks)])
        for u in settings.upstreams
    }


class ResilienceCollector:
    """A Prometheus collector reading the wrappers' counters when ``/metrics`` is scraped."""

    def __init__(
        self,
        guarded: Mapping[str, Guarded],
        chains: Mapping[str, FallbackProvider[CachedProvider]],
        settings: Settings,
    ) -> None:
        self._guarded = guarded
        self._chains = chains
        self._members = {u.name: (u.name, *u.fallbacks) for u in settings.upstreams}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        retries = CounterMetricFamily(
            "vex_llm_upstream_retries", "Retries made to an upstream.", labels=["upstream"]
        )
        exhausted = CounterMetricFamily(
            "vex_llm_upstream_retry_budget_exhausted",
            "Retries not made because the upstream's retry budget was spent.",
            labels=["upstream"],
        )
        gave_up = CounterMetricFamily(
            "vex_llm_upstream_retry_gave_up_early",
            "Failures returned at once: the wait (Retry-After or backoff) would overrun the "
            "deadline or the longest wait allowed.",
            labels=["upstream"],
        )
        state = GaugeMetricFamily(
            "vex_llm_upstream_breaker_state",
            "1 for the circuit breaker's current state (closed, open, half_open).",
            labels=["upstream", "state"],
        )
        opened = CounterMetricFamily(
            "vex_llm_upstream_breaker_opened", "Times the breaker opened.", labels=["upstream"]
        )
        rejected = CounterMetricFamily(
            "vex_llm_upstream_breaker_rejected",
            "Calls failed at once because the breaker was open.",
            labels=["upstream"],
        )
        for name, g in self._guarded.items():
            if g.retry is not None:
                retries.add_metric([name], g.retry.counters.retries)
                exhausted.add_metric([name], g.retry.counters.budget_exhausted)
                gave_up.add_metric([name], g.retry.counters.gave_up_early)
            if g.breaker is not None:
                current = g.breaker.state
                for s in ("closed", "open", "half_open"):
                    state.add_metric([name, s], 1.0 if s == current else 0.0)
                opened.add_metric([name], g.breaker.circuit.opened)
                rejected.add_metric([name], g.breaker.rejected)
        fallbacks = CounterMetricFamily(
            "vex_llm_fallbacks",
            "Answers to requests for a model given by one of its fallback upstreams.",
            labels=["model", "upstream"],
        )
        for model, chain in self._chains.items():
            members = self._members[model]
            for index in range(1, len(members)):
                fallbacks.add_metric([model, members[index]], chain.answered[index])
        yield from (retries, exhausted, gave_up, state, opened, rejected, fallbacks)
