"""Latency quantiles from the proxy's duration histogram, as Prometheus estimates them.

The proxy keeps no list of durations, only the cumulative bucket counts of
``vex_llm_request_duration_seconds`` (bounded memory, summed over workers under ``--workers``).
A quantile is therefore *bucket-interpolated*: the bucket that holds the rank is found and the
value placed linearly inside it, the same estimate as PromQL's ``histogram_quantile``. So the
p50/p99 in ``/v1/cache/stats`` and on the dashboard are what a Grafana panel over the same
buckets shows, and their error is bounded by the width of the bucket they fall in (buckets are
listed in ``server/metrics.py``). Pure functions over values: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["Buckets", "latency_ms", "quantile"]

#: Upper bound (seconds, ``inf`` for ``+Inf``) -> observations at or below it (cumulative).
Buckets = dict[float, float]


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """The ``q``-quantile (0..1) in seconds of the cumulative ``buckets``; None when empty.

    As ``histogram_quantile``: a rank in the ``+Inf`` bucket gives the largest finite bound,
    and the first bucket is taken to start at 0.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None  # a histogram without its +Inf bucket is incomplete
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower  # unreachable for a cumulative histogram; the largest finite bound


def latency_ms(buckets: Mapping[float, float]) -> dict[str, float | None]:
    """``{"p50": ms, "p99": ms}`` of ``buckets`` (None without observations), to the µs."""
    figures: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        seconds = quantile(buckets, q)
        figures[name] = None if seconds is None else round(seconds * 1000, 3)
    return figures
