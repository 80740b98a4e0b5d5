"""Prometheus metrics of one proxy app, in its own ``CollectorRegistry``.

Under ``vex-llm serve --workers N`` each worker counts into files in the directory named by
``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before it starts the workers:
prometheus-client's multiprocess mode), and ``render()`` adds up every worker's files, so a
scrape that lands on any one worker reports the whole server. The store breaker's gauges stay
the answering worker's own.

Labels are the tenant id and the model name as configured, both bounded by the config; a model
a client made up is counted as ``_unknown`` and an unauthenticated caller as ``_anonymous``,
so no client can grow the number of series. Nothing is ever labelled by a key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vex_llm.server.money import NOTHING, Dollars

if TYPE_CHECKING:
    from vex_llm.cache.stores.breaker import StoreCircuit

__all__ = ["ANONYMOUS", "UNKNOWN_MODEL", "ProxyMetrics"]

ANONYMOUS = "_anonymous"
UNKNOWN_MODEL = "_unknown"

# Hits take about a millisecond, upstream calls up to minutes: buckets span both.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the proxy's metrics need prometheus-client: pip install 'vex-llm[server]'"
        ) from exc
    return prometheus_client


class ProxyMetrics:
    """The proxy's counters and histograms; ``render()`` gives the Prometheus text."""

    def __init__(self) -> None:
        prom = _prometheus()
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        # Read once: prometheus-client itself chose its value store at import from it.
        self._multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self._extra: list[Any] = []
        labels = ("tenant", "model")
        r = self.registry
        self.requests = prom.Counter(
            "vex_llm_requests",
            "Requests answered, by endpoint and HTTP status class.",
            (*labels, "endpoint", "status"),
            registry=r,
        )
        self.cache = prom.Counter(
            "vex_llm_cache_lookups",
            "Answers by endpoint and cache outcome (hit, miss, coalesced, bypass, stale).",
            (*labels, "endpoint", "outcome"),
            registry=r,
        )
        self.upstream_errors = prom.Counter(
            "vex_llm_upstream_errors",
            "Upstream failures passed on to clients, by error type.",
            (*labels, "error"),
            registry=r,
        )
        self.tokens_saved = prom.Counter(
            "vex_llm_tokens_saved",
            "Tokens of answers served without an upstream call (hits and coalesced).",
            labels,
            registry=r,
        )
        self.dollars_spent = prom.Counter(
            "vex_llm_dollars_spent",
            "Dollars the upstream charged for answers that went upstream (miss, bypass).",
            labels,
            registry=r,
        )
        self.dollars_saved = prom.Counter(
            "vex_llm_dollars_saved",
            "Dollars the upstream would have charged for answers served without a call "
            "(hit, coalesced).",
            labels,
            registry=r,
        )
        self.unpriced = prom.Counter(
            "vex_llm_unpriced_answers",
            "Answers of an upstream without a known price: not in the dollar counters.",
            labels,
            registry=r,
        )
        # Here, not in the gate's own collector: a counter read from one worker's memory
        # would jump between workers' values from scrape to scrape under --workers.
        self.quota_refused = prom.Counter(
            "vex_llm_quota_refused",
            "Requests refused (429) by a tenant's rate limit or budget, by reason (requests, "
            "tokens, daily_budget, monthly_budget).",
            ("tenant", "reason"),
            registry=r,
        )
        self.latency = prom.Histogram(
            "vex_llm_request_duration_seconds",
            "Time to answer (to the last byte for streams), by endpoint and outcome.",
            (*labels, "endpoint", "outcome"),
            buckets=_BUCKETS,
            registry=r,
        )

    def watch_breaker(self, breaker: StoreCircuit) -> None:
        """Export the store circuit breaker's state and counts, read at each scrape."""
        self.watch(_BreakerCollector(breaker))

    def watch(self, collector: Any) -> None:
        """Export ``collector``'s metrics (read at each scrape; the answering worker's own
        under --workers)."""
        self.registry.register(collector)
        self._extra.append(collector)

    def observe(
        self,
        tenant: str,
        model: str,
        outcome: str,
        seconds: float,
        tokens_saved: int,
        endpoint: str = "chat.completions",
        dollars: Dollars | None = NOTHING,
    ) -> None:
        """Record one answer served through ``endpoint`` (a front door's name) and what it
        cost or saved (``dollars``; None: its upstream has no price, see ``server.money``)."""
        self.cache.labels(tenant, model, endpoint, outcome).inc()
        self.latency.labels(tenant, model, endpoint, outcome).observe(seconds)
        if tokens_saved and outcome in ("hit", "coalesced", "partial"):
            self.tokens_saved.labels(tenant, model).inc(tokens_saved)
        if dollars is None:
            self.unpriced.labels(tenant, model).inc()
            return
        # Only what moved: each labelled increment costs ~2-3 us, and an answer either spends
        # or saves (a free upstream neither); unpriced answers have their own counter.
        if dollars.spent:
            self.dollars_spent.labels(tenant, model).inc(dollars.spent)
        if dollars.saved:
            self.dollars_saved.labels(tenant, model).inc(dollars.saved)

    def charge(self, tenant: str, model: str, dollars: Dollars | None) -> None:
        """Count the dollars a stream that broke off spent (it is no answer: no lookup, no
        latency; None: its upstream has no price, nothing to count)."""
        if dollars is not None and dollars.spent:
            self.dollars_spent.labels(tenant, model).inc(dollars.spent)

    def status(
        self, tenant: str, model: str, status: int, endpoint: str = "chat.completions"
    ) -> None:
        """Count a response of ``endpoint`` by its status class (``2xx``, ``4xx``...)."""
        self.requests.labels(tenant, model, endpoint, f"{status // 100}xx").inc()

    def refused(self, tenant: str, reason: str) -> None:
        """Count a request the quota gate refused for ``reason``."""
        self.quota_refused.labels(tenant, reason).inc()

    def upstream_error(self, tenant: str, model: str, error: str) -> None:
        """Count an upstream failure of type ``error`` (the exception class name)."""
        self.upstream_errors.labels(tenant, model, error).inc()

    def _all_workers(self) -> Any:
        registry = self.registry
        if self._multiprocess_dir is not None:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = self._prom.CollectorRegistry()
            MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            for collector in self._extra:
                registry.register(collector)
        return registry

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' counts under --workers)."""
        return self._prom.generate_latest(self._all_workers()), self._prom.CONTENT_TYPE_LATEST

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample as ``(name, labels, value)``, all workers' counts under --workers."""
        for metric in self._all_workers().collect():
            for sample in metric.samples:
                yield sample.name, sample.labels, sample.value


class _BreakerCollector:
    """The store circuit breaker as metrics: a gauge per state (1 for the current one) and
    counters of circuit openings and of store calls skipped while it was not closed."""

    def __init__(self, breaker: StoreCircuit) -> None:
        self._breaker = breaker

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        breaker = self._breaker
        state = GaugeMetricFamily(
            "vex_llm_store_circuit_state",
            "The cache store's circuit breaker: 1 for its current state (closed: the store is "
            "used; open: skipped, requests go upstream; half_open: being probed).",
            labels=("state",),
        )
        for name in ("closed", "open", "half_open"):
            state.add_metric((name,), 1.0 if breaker.state == name else 0.0)
        yield state
        yield CounterMetricFamily(
            "vex_llm_store_circuit_opened",
            "Times the cache store's circuit opened after consecutive failures or timeouts.",
            value=breaker.opens,
        )
        yield CounterMetricFamily(
            "vex_llm_store_circuit_skipped",
            "Cache store calls answered without the store because its circuit was open.",
            value=breaker.skipped,
        )
