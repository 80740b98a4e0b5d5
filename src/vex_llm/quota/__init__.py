"""Rate limits and budgets per tenant (issue 14): requests and tokens per minute, dollars per
UTC day and month, counted in-process or across every proxy sharing a Redis.

- ``gcra``: the rate arithmetic (pure, injectable time); ``policy``: quotas and their units;
  ``estimate``: tokens counted before a call; ``periods``: budget days and months;
  ``headers``: OpenAI's ``x-ratelimit-*`` headers.
- ``local`` / ``redis`` (+ ``redis_scripts``) / ``failover``: where the counting happens;
  ``backends`` picks one for a cache store.
- ``gate``: what the proxy asks (admit, settle) and the 429s it answers with; ``metrics``.
"""

from vex_llm.quota.backends import backend_for_store, is_shared
from vex_llm.quota.gate import (
    UPSTREAM_OUTCOMES,
    Pricer,
    QuotaGate,
    Refusal,
    Ticket,
    no_quota_figures,
)
from vex_llm.quota.local import LocalQuota
from vex_llm.quota.policy import Limits, TenantQuota
from vex_llm.quota.standing import QuotaBackend, Standing

__all__ = [
    "UPSTREAM_OUTCOMES",
    "Limits",
    "LocalQuota",
    "Pricer",
    "QuotaBackend",
    "QuotaGate",
    "Refusal",
    "Standing",
    "TenantQuota",
    "Ticket",
    "backend_for_store",
    "is_shared",
    "no_quota_figures",
]
