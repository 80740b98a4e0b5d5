"""How the cache served a request: ``CacheOutcome`` and ``CacheResult`` (a leaf module).

Shared by ``CachedProvider``, the stream side (``streaming``) and the proxy, so it imports
nothing from ``vex_llm.cache``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vex_llm.models import LLMResponse

__all__ = ["CacheOutcome", "CacheResult"]

#: How a request was served: from the store, by an upstream call it made, by joining an
#: identical call in flight (in this process, or in another one sharing the store), or
#: upstream without a lookup (``no_cache``), or by a stale entry because the upstream failed
#: (stale-if-error, see ``staleness``).
CacheOutcome = Literal["hit", "miss", "coalesced", "bypass", "stale"]


@dataclass(frozen=True, slots=True)
class CacheResult:
    """A response with how the cache served it: ``outcome``, ``key`` and ``age`` (seconds,
    for hits and stale answers)."""

    response: LLMResponse
    outcome: CacheOutcome
    key: str
    age: float | None = None
