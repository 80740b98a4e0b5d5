"""The gate's counts as Prometheus metrics, read when ``/metrics`` is scraped.

``vex_llm_quota_refused_total{tenant,reason}``: requests answered 429 by the gate, by reason
(``requests``, ``tokens``, ``daily_budget``, ``monthly_budget``);
``vex_llm_quota_store_errors_total``: limiter operations the shared store failed (or skipped,
its circuit open), answered in-process instead. Under ``--workers``: the answering worker's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vex_llm.quota.failover import FailoverQuota
from vex_llm.quota.gate import QuotaGate

__all__ = ["QuotaCollector"]


class QuotaCollector:
    """A Prometheus collector over a :class:`QuotaGate`'s counters."""

    def __init__(self, gate: QuotaGate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Any]:
        """The metric families (the prometheus-client collector protocol)."""
        from prometheus_client.core import CounterMetricFamily

        refused = CounterMetricFamily(
            "vex_llm_quota_refused",
            "Requests refused (429) by a tenant's rate limit or budget, by reason.",
            labels=["tenant", "reason"],
        )
        for (tenant, reason), count in sorted(self._gate.refused.items()):
            refused.add_metric([tenant, reason], count)
        yield refused
        backend = self._gate.backend
        errors = CounterMetricFamily(
            "vex_llm_quota_store_errors",
            "Rate-limit operations counted in-process because the shared store failed "
            "(or, its circuit open, was skipped).",
        )
        errors.add_metric([], backend.errors if isinstance(backend, FailoverQuota) else 0)
        yield errors
