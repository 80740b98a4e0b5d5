"""The proxy's side of rate limits and budgets: the gate its settings describe, and its
refusals as HTTP failures (429 in the door's error shape, with ``Retry-After`` and the
``x-ratelimit-*`` headers). The rules themselves are ``vex_llm.quota``'s.

Budgets need each upstream's price: the proxy resolves them once when it starts
(``server.upstreams.upstream_prices``: the configured price, 0 on loopback, the catalogue),
never on a request. An upstream without a known price is logged at startup and its answers
cost a budget nothing: give it a ``price``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vex_llm.cache.stores.base import CacheStore
from vex_llm.models import Usage
from vex_llm.pricing import Price, cost
from vex_llm.quota import Pricer, QuotaGate, Refusal, backend_for_store, no_quota_figures
from vex_llm.server.admin import one_tenant
from vex_llm.server.failures import Failure
from vex_llm.server.settings import Settings

__all__ = ["build_gate", "refusal_failure", "with_quota_figures"]

log = logging.getLogger("vex_llm.server")


def _pricer(prices: Mapping[str, Price | None]) -> Pricer:
    """(upstream, usage) -> USD at ``prices``; an unpriced upstream is logged once, here."""
    for name, found in prices.items():
        if found is None:
            log.warning(
                "budgets: no price is known for upstream %r: its answers are not charged to "
                "any budget (give it a price in its [upstreams] table)",
                name,
            )

    def price(upstream: str, usage: Usage) -> float:
        found = prices.get(upstream)
        return 0.0 if found is None else cost(found, usage)

    return price


def build_gate(
    settings: Settings, store: CacheStore, prices: Mapping[str, Price | None]
) -> QuotaGate:
    """The gate of ``settings``' quotas, counting beside ``store`` (shared when it is Redis);
    ``prices`` (upstream name -> price, resolved at startup) charge the budgets."""
    quotas = {t.tenant_id: t.quota for t in settings.tenants if t.quota is not None}
    every = [settings.quota, *quotas.values()]
    if not any(q.limited for q in every):
        return QuotaGate(None)  # nothing to count: no backend touches the store
    backend = backend_for_store(store, settings.store_breaker)
    budgets = any(q.limits().has_budget for q in every)
    return QuotaGate(backend, quotas, settings.quota, price=_pricer(prices) if budgets else None)


def refusal_failure(refusal: Refusal) -> Failure:
    """``refusal`` as the 429 failure every door renders."""
    return Failure(429, refusal.message, refusal.type, refusal.code, None, dict(refusal.headers))


async def with_quota_figures(
    gate: QuotaGate, settings: Settings, tenants: Mapping[str, Any]
) -> dict[str, Any]:
    """The admin's per-tenant figures of ``/v1/cache/stats`` with each tenant's ``limits`` and
    ``budget``: the tenants with traffic, and every configured tenant with a quota (with zero
    counters: its budget shows before its first request). A label that is no configured
    tenant (``_anonymous``) gets nulls."""
    configured = {t.tenant_id for t in settings.tenants}
    if settings.open_tenant is not None:
        configured.add(settings.open_tenant)
    limited = {t for t in configured if gate.limits(t) is not None}
    blank = {k: v for k, v in one_tenant({}, "").items() if k != "tenant"}  # zero counters
    figures = {}
    for name in sorted({*tenants, *limited}):
        quota = await gate.figures(name) if name in configured else no_quota_figures()
        figures[name] = {**(tenants.get(name) or blank), **quota}
    return figures
