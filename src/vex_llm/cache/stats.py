"""Cache statistics: live counters kept by ``CachedProvider`` and the ``CacheStats`` snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

from vex_llm.models import Usage
from vex_llm.pricing import Price, cost

__all__ = ["CacheStats", "Counters"]


class Counters:
    """Mutable counters, bumped on the request path (plain attributes: cheapest to update).

    Tokens are counted apart, prompt and completion, saved (answers served without an
    upstream call, :meth:`save`) and spent (an upstream call's answer, :meth:`spend`); the
    dollars follow from them and ``price`` (None: unknown) when asked, so a hit adds two
    integers and prices nothing.
    """

    __slots__ = (
        "bypasses",
        "coalesced",
        "completion_saved",
        "completion_spent",
        "errors",
        "hits",
        "misses",
        "only_if_cached_misses",
        "price",
        "prompt_saved",
        "prompt_spent",
        "stale",
        "store_errors",
    )

    def __init__(self, price: Price | None = None) -> None:
        self.price = price
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.bypasses = 0
        self.errors = 0
        self.store_errors = 0
        self.only_if_cached_misses = 0
        self.stale = 0
        self.prompt_saved = self.completion_saved = 0
        self.prompt_spent = self.completion_spent = 0

    def save(self, usage: Usage) -> None:
        """Count an answer served without an upstream call."""
        self.prompt_saved += usage.prompt_tokens
        self.completion_saved += usage.completion_tokens

    def hit(self, usage: Usage) -> None:
        """Count a hit and what it saved (one call on the hit path, not two steps)."""
        self.hits += 1
        self.prompt_saved += usage.prompt_tokens
        self.completion_saved += usage.completion_tokens

    def spend(self, usage: Usage) -> None:
        """Count an upstream call's answer."""
        self.prompt_spent += usage.prompt_tokens
        self.completion_spent += usage.completion_tokens

    @property
    def tokens_saved(self) -> int:
        """Tokens of the answers served without an upstream call."""
        return self.prompt_saved + self.completion_saved

    def dollars(self) -> tuple[float | None, float | None]:
        """``(spent, saved)`` in dollars; ``(None, None)`` when the price is unknown."""
        price = self.price
        if price is None:
            return None, None
        spent = cost(price, Usage(self.prompt_spent, self.completion_spent))
        saved = cost(price, Usage(self.prompt_saved, self.completion_saved))
        return spent, saved


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
    - ``dollars_spent``: what the upstream calls' answers cost (one per call, however many
      callers shared it; refreshes included); ``dollars_saved``: what the answers served
      without an upstream call (hits, coalesced) would have cost. Both at the price the cache
      was given (``CachedProvider(price=...)``), None when it has none: unknown, not free.
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
    dollars_spent: float | None = None
    dollars_saved: float | None = None

    @property
    def lookups(self) -> int:
        """Requests that consulted the cache (everything but bypasses)."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_rate(self) -> float:
        """Share of lookups answered from the store, 0.0 when there were none."""
        lookups = self.lookups
        return self.hits / lookups if lookups else 0.0
