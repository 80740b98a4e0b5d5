"""The proxy's side of rate limits and budgets: the gate its settings describe, and its
refusals as HTTP failures (429 in the door's error shape, with ``Retry-After`` and the
``x-ratelimit-*`` headers). The rules themselves are ``vex_llm.quota``'s.

Budgets need each upstream's price (``vex_llm.pricing``): they are resolved once, when the
gate is built, never on a request. An upstream without a known price is logged at startup
and its answers cost a budget nothing: give it a price override.
"""

from __future__ import annotations

import logging

from vex_llm.cache.stores.base import CacheStore
from vex_llm.models import Usage
from vex_llm.pricing import PriceBook, cost
from vex_llm.quota import Pricer, QuotaGate, Refusal, backend_for_store
from vex_llm.server.failures import Failure
from vex_llm.server.settings import Settings

__all__ = ["build_gate", "refusal_failure", "upstream_prices"]

log = logging.getLogger("vex_llm.server")


def upstream_prices(settings: Settings, book: PriceBook) -> Pricer:
    """Each upstream's answers priced by ``book``, resolved now: (upstream, usage) -> USD."""
    prices = {u.name: book.price(u.model, u.base_url) for u in settings.upstreams}
    for name, found in prices.items():
        if found is None:
            log.warning(
                "budgets: no price is known for upstream %r: its answers are not charged to "
                "any budget (give it a price override)",
                name,
            )

    def price(upstream: str, usage: Usage) -> float:
        found = prices.get(upstream)
        return 0.0 if found is None else cost(found, usage)

    return price


def build_gate(settings: Settings, store: CacheStore, book: PriceBook | None = None) -> QuotaGate:
    """The gate of ``settings``' quotas, counting beside ``store`` (shared when it is Redis);
    ``book`` prices the upstreams' answers for budgets (default: the catalogue)."""
    quotas = {t.tenant_id: t.quota for t in settings.tenants if t.quota is not None}
    every = [settings.quota, *quotas.values()]
    if not any(q.limited for q in every):
        return QuotaGate(None)  # nothing to count: no backend touches the store
    backend = backend_for_store(store, settings.store_breaker)
    budgets = any(q.limits().has_budget for q in every)
    price = upstream_prices(settings, book or PriceBook()) if budgets else None
    return QuotaGate(backend, quotas, settings.quota, price=price)


def refusal_failure(refusal: Refusal) -> Failure:
    """``refusal`` as the 429 failure every door renders."""
    return Failure(429, refusal.message, refusal.type, refusal.code, None, dict(refusal.headers))
