"""Cache configuration (``LLMCacheConfig``) and the pure rule for an entry's expiry.

Durations are seconds (``float``) or ``timedelta``; sizes are positive ints. Bad values are a
``ValueError``/``TypeError`` here, when the config is built, never later inside the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from vex_llm.models import CacheControl, InputLimits
from vex_llm.validation import positive_int, seconds

__all__ = ["LLMCacheConfig", "effective_expiry", "shorter_lifetime"]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LLMCacheConfig:
    """Bounds and expiry for a response cache.

    ``max_entries`` and ``max_bytes`` are hard ceilings (None lifts one, not both); ``ttl``
    is the age at which an entry dies, ``tti`` the idle time after which it dies (None: no
    idle expiry). An entry dies at whichever comes first. ``limits``, when set, bounds request
    sizes for the whole stack under the cache (it becomes the wrapped provider's, see
    ``WrapperProvider``); None keeps the wrapped provider's own.
    ``LLMCacheConfig()`` equals :meth:`default`.
    """

    max_entries: int | None = 1000
    max_bytes: int | None = 64 * _MIB
    ttl: float | timedelta | None = 3600.0
    tti: float | timedelta | None = 1800.0
    limits: InputLimits | None = None
    #: Stale-if-error (RFC 5861): entries are kept this long past their ttl, and answer when
    #: the upstream fails (see ``vex_llm.cache.staleness``). None: off.
    stale_if_error: float | timedelta | None = None
    #: Stale-while-revalidate (RFC 5861): for this long past its ttl an entry answers at once
    #: while one background call refreshes it. None: off.
    stale_while_revalidate: float | timedelta | None = None

    def __post_init__(self) -> None:
        positive_int("max_entries", self.max_entries, optional=True)
        positive_int("max_bytes", self.max_bytes, optional=True)
        if self.max_entries is None and self.max_bytes is None:
            raise ValueError(
                "set max_entries or max_bytes (or both): an unbounded cache grows until the "
                "process runs out of memory"
            )
        object.__setattr__(self, "ttl", seconds("ttl", self.ttl))
        object.__setattr__(self, "tti", seconds("tti", self.tti))
        object.__setattr__(self, "stale_if_error", seconds("stale_if_error", self.stale_if_error))
        swr = seconds("stale_while_revalidate", self.stale_while_revalidate)
        object.__setattr__(self, "stale_while_revalidate", swr)
        if self.limits is not None and not isinstance(self.limits, InputLimits):
            raise TypeError("limits must be an InputLimits or None")

    @property
    def ttl_seconds(self) -> float | None:
        """``ttl`` in seconds (normalised at construction)."""
        return self.ttl  # type: ignore[return-value]

    @property
    def tti_seconds(self) -> float | None:
        """``tti`` in seconds (normalised at construction)."""
        return self.tti  # type: ignore[return-value]

    @property
    def stale_if_error_seconds(self) -> float | None:
        """``stale_if_error`` in seconds (normalised at construction)."""
        return self.stale_if_error  # type: ignore[return-value]

    @property
    def stale_while_revalidate_seconds(self) -> float | None:
        """``stale_while_revalidate`` in seconds (normalised at construction)."""
        return self.stale_while_revalidate  # type: ignore[return-value]

    @property
    def grace(self) -> float | None:
        """How long past its ttl an entry may still serve (either stale mode), or None."""
        sie, swr = self.stale_if_error_seconds, self.stale_while_revalidate_seconds
        if sie is None and swr is None:
            return None
        return max(sie or 0.0, swr or 0.0)

    @property
    def kept_for(self) -> float | None:
        """How long a store must keep an entry: ``ttl`` plus the stale grace."""
        if self.ttl_seconds is None:
            return None
        return self.ttl_seconds + (self.grace or 0.0)

    @classmethod
    def default(cls) -> LLMCacheConfig:
        """1000 entries (64 MiB), ttl 1 h, tti 30 min."""
        return cls()

    @classmethod
    def aggressive(cls) -> LLMCacheConfig:
        """10 000 entries (512 MiB), ttl 24 h, no idle expiry: the most savings."""
        return cls(max_entries=10_000, max_bytes=512 * _MIB, ttl=86_400.0, tti=None)

    @classmethod
    def conservative(cls) -> LLMCacheConfig:
        """100 entries (16 MiB), ttl 5 min, tti 60 s: the freshest answers."""
        return cls(max_entries=100, max_bytes=16 * _MIB, ttl=300.0, tti=60.0)


def shorter_lifetime(configured: float | None, requested: float | None) -> float | None:
    """The shorter of two lifetimes in seconds, where None means unbounded."""
    if requested is None:
        return configured
    if configured is None:
        return requested
    return min(configured, requested)


def effective_expiry(
    config: LLMCacheConfig, control: CacheControl
) -> tuple[float | None, float | None]:
    """The (ttl, tti) in seconds for an entry stored under ``control``.

    A request may only shorten the configured lifetimes: a client asking for a longer ttl
    than the operator allows must not be able to pin entries in a shared cache.
    """
    return (
        shorter_lifetime(config.ttl_seconds, control.ttl_seconds),
        shorter_lifetime(config.tti_seconds, control.tti_seconds),
    )
