"""The rows ``vex-llm cache stats --server`` prints from a proxy's ``GET /v1/cache/stats``.

Pure: the answer's JSON in, table rows out (one per tenant and model, then each tenant's
total, then, for the admin, the whole cache's), so the CLI only fetches and prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STATS_COLUMNS", "dollars", "stats_rows"]

#: Column headers of :func:`stats_rows`.
STATS_COLUMNS = (
    "tenant",
    "model",
    "hits",
    "misses",
    "coalesced",
    "tokens saved",
    "$ spent",
    "$ saved",
    "unpriced",
)


def dollars(value: object) -> str:
    """A dollar figure to six decimals (``unknown`` for a model without a price)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "unknown"
    return f"${value:,.6f}"


def _row(tenant: str, model: str, figures: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        tenant,
        model,
        str(figures.get("hits", 0)),
        str(figures.get("misses", 0)),
        str(figures.get("coalesced", 0)),
        f"{figures.get('tokens_saved', 0):,}",
        dollars(figures.get("dollars_spent")),
        dollars(figures.get("dollars_saved")),
        str(figures.get("unpriced", "")),
    )


def stats_rows(stats: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Rows for the admin's view (every tenant, then the cache's totals) or a tenant's."""
    tenants: Mapping[str, Any] = (
        stats["tenants"] if "tenants" in stats else {stats["tenant"]: stats}
    )
    rows = []
    for tenant, figures in tenants.items():
        for model, counters in figures.get("models", {}).items():
            rows.append(_row(tenant, model, counters))
        rows.append(_row(tenant, "(all)", figures))
    if "tenants" in stats:
        # The cache's own counters: one spend per upstream call, background refreshes too.
        rows.append(_row("(cache)", "(all)", {**stats, "unpriced": ""}))
    return rows
