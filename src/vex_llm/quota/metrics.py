"""The limiter's own count as a Prometheus metric, read when ``/metrics`` is scraped.

``vex_llm_quota_store_errors_total``: limiter operations the shared store failed (or skipped,
its circuit open), answered in-process instead. Under ``--workers``: the answering worker's own.
(Refusals, ``vex_llm_quota_refused_total``, are a counter of the proxy's metrics, added up over
every worker.)
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

        backend = self._gate.backend
        errors = CounterMetricFamily(
            "vex_llm_quota_store_errors",
            "Rate-limit operations counted in-process because the shared store failed "
            "(or, its circuit open, was skipped).",
        )
        errors.add_metric([], backend.errors if isinstance(backend, FailoverQuota) else 0)
        yield errors
