"""Cache statistics: live counters kept by ``CachedProvider`` and the ``CacheStats`` snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CacheStats", "Counters"]


class Counters:
    """Mutable counters, bumped on the request path (plain attributes: cheapest to update)."""

    __slots__ = (
        "bypasses",
        "coalesced",
        "errors",
        "hits",
        "misses",
        "only_if_cached_misses",
        "stale",
        "store_errors",
        "tokens_saved",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.bypasses = 0
        self.errors = 0
        self.store_errors = 0
        self.only_if_cached_misses = 0
        self.stale = 0
        self.tokens_saved = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters and contents.

    - ``hits``: answered from the store; ``misses``: went upstream as the one caller for a key;
      ``coalesced``: waited for another caller's identical upstream call instead of making one
      (in this process, or in another process sharing the store, see ``LeaseStore``);
      ``bypasses``: ``no_cache`` requests, which always go upstream.
    - ``hit_rate`` is ``hits / (hits + misses + coalesced)``: the share of cacheable lookups
      answered from stored entries. Coalesced calls saved an upstream call too; they are
      counted apart so the two effects stay visible.
    - ``errors``: upstream failures (never stored); ``store_errors``: failed store operations
      (reads, writes, leases) that were survived by going upstream; one request during an
      outage may count up to three.
    - ``evictions`` by cause: ``size``, ``expired``, ``explicit`` (delete and clear).
    - ``stale``: answers served from an entry past its ttl because the upstream failed
      (stale-if-error); the failed call is also counted in ``misses`` and ``errors``. A
      stale-while-revalidate answer is a hit; its background refresh is a miss.
    - ``tokens_saved``: total tokens of answers served without an upstream call.
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    bypasses: int = 0
    errors: int = 0
    store_errors: int = 0
    only_if_cached_misses: int = 0
    evictions: dict[str, int] = field(default_factory=dict)
    entries: int = 0
    bytes: int = 0
    tokens_saved: int = 0
    stale: int = 0

    @property
    def lookups(self) -> int:
        """Requests that consulted the cache (everything but bypasses)."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_rate(self) -> float:
        """Share of lookups answered from the store, 0.0 when there were none."""
        lookups = self.lookups
        return self.hits / lookups if lookups else 0.0
