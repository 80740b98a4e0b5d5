"""The proxy's side of rate limits and budgets: the gate its settings describe, and its
refusals as HTTP failures (429 in the door's error shape, with ``Retry-After`` and the
``x-ratelimit-*`` headers). The rules themselves are ``vex_llm.quota``'s.
"""

from __future__ import annotations

from vex_llm.cache.stores.base import CacheStore
from vex_llm.quota import Price, QuotaGate, Refusal, backend_for_store
from vex_llm.server.failures import Failure
from vex_llm.server.settings import Settings

__all__ = ["build_gate", "refusal_failure"]


def build_gate(settings: Settings, store: CacheStore, price: Price | None = None) -> QuotaGate:
    """The gate of ``settings``' quotas, counting beside ``store`` (shared when it is Redis)."""
    quotas = {t.tenant_id: t.quota for t in settings.tenants if t.quota is not None}
    limited = settings.quota.limited or any(q.limited for q in quotas.values())
    # Without any quota no backend is needed (and none touches the store).
    backend = backend_for_store(store, settings.store_breaker) if limited else None
    return QuotaGate(backend, quotas, settings.quota, price=price)


def refusal_failure(refusal: Refusal) -> Failure:
    """``refusal`` as the 429 failure every door renders."""
    return Failure(429, refusal.message, refusal.type, refusal.code, None, dict(refusal.headers))
