"""Stale-if-error and stale-while-revalidate (RFC 5861): how old a stored answer may be, and
when it may stand in. Pure.

With ``LLMCacheConfig.stale_if_error`` set (the *grace*), entries are written to the store
for ``ttl + grace`` instead of ``ttl``. Read back, an entry no older than ``ttl`` is
``fresh`` (a hit, as before); one older, but by no more than the grace (and than the
request's own ``CacheControl.stale_if_error``, when it gives one), is ``stale``: the request
goes upstream as on a miss, and if the upstream fails in a way a stale answer can cover (a
5xx, 429, timeout, unreachable or malformed upstream, an open circuit breaker; never a 4xx)
the stale answer is served, marked as such, with its age. Anything older is ``expired``: a
miss. Staleness is judged by the cache from ``stored_at``, so every store keeps stale entries
the same way: it only has to keep them for the longer lifetime.

With ``stale_while_revalidate`` set, an entry at most that far past its ttl is
``revalidate``: it answers at once (marked stale, with its age) while one background call,
through the single-flight, refreshes it.

An entry written under a request's shorter ``ttl`` (``max-age``) gets no grace: the client
asked for it to be kept that long and no longer. ``tti`` still removes idle entries.
"""

from __future__ import annotations

from typing import Literal

from vex_llm.cache.config import LLMCacheConfig, effective_expiry
from vex_llm.models import CacheControl
from vex_llm.resilience.classify import failure_kind
from vex_llm.resilience.fallback import DEFAULT_FALL_BACK_ON

__all__ = ["Freshness", "covers", "freshness", "store_expiry"]

#: An entry read back: usable as it is, usable now while it is refreshed, usable only if the
#: upstream fails, or not at all.
Freshness = Literal["fresh", "revalidate", "stale", "expired"]


def freshness(
    age: float,
    ttl: float | None,
    grace: float | None,
    accepted: float | None = None,
    revalidate: float | None = None,
) -> Freshness:
    """The state of an entry ``age`` seconds old, under the configured ``ttl``, stale-if-error
    ``grace`` and stale-while-revalidate window (``revalidate``), and the stale-if-error
    staleness the request ``accepted`` (None: whatever the grace allows)."""
    if ttl is None or age <= ttl:
        return "fresh"
    if revalidate is not None and age - ttl <= revalidate:
        return "revalidate"
    limit = grace or 0.0
    if accepted is not None:
        limit = min(limit, accepted)
    return "stale" if age - ttl <= limit else "expired"


def store_expiry(
    config: LLMCacheConfig, control: CacheControl
) -> tuple[float | None, float | None]:
    """The (ttl, tti) to write an entry with: the effective ones, plus the grace on the ttl
    unless the request shortened it."""
    ttl, tti = effective_expiry(config, control)
    grace = config.grace
    if grace and ttl is not None and ttl == config.ttl_seconds:
        ttl += grace
    return ttl, tti


def covers(exc: BaseException) -> bool:
    """Whether a stale answer may stand in for the failure ``exc`` (not for a 4xx: that
    request itself is refused, and no stored answer makes it right)."""
    return failure_kind(exc) in DEFAULT_FALL_BACK_ON
