"""The knobs of the resilience wrappers as small frozen values: ``RetryPolicy``, ``BreakerPolicy``.

Bad values are refused where the policy is built, by :mod:`vex_llm.validation`'s checks
(a wrong type is a ``TypeError``, an impossible value a ``ValueError``, both naming the
field), so a wrapper never meets a nonsensical setting at request time.
"""

from __future__ import annotations

from dataclasses import dataclass

from vex_llm.resilience.classify import FailureKind
from vex_llm.validation import flag, number_in, positive_int, positive_number

__all__ = ["BreakerPolicy", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often :class:`~vex_llm.resilience.RetryingProvider` tries again.

    - ``max_attempts``: attempts in all, the first included (1 = never retry).
    - ``base_delay`` / ``max_delay``: exponential backoff with full jitter: before retry
      *n* it sleeps a uniform random time in ``[0, min(max_delay, base_delay * 2**(n-1))]``.
    - ``on_rate_limited`` (429), ``on_server_error`` (5xx; a 503's ``Retry-After`` is
      honoured like a 429's), ``on_connection`` (the request
      never reached the backend), ``on_timeout``: which failures are retried. Timeouts are
      off by default: the backend may still be working on (and billing) the first attempt.
    - ``max_retry_after``: a 429 asking to wait longer than this is returned at once.
    - ``timeout``: bounds the whole call, retries included, for requests without a timeout
      of their own (None: only the attempts' own timeouts bound it).
    - ``budget_ratio`` / ``budget_min_per_second`` / ``budget_window``: the retry budget
      (see :class:`~vex_llm.resilience.RetryBudget`).
    """

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 5.0
    on_rate_limited: bool = True
    on_server_error: bool = True
    on_connection: bool = True
    on_timeout: bool = False
    max_retry_after: float = 30.0
    timeout: float | None = None
    budget_ratio: float = 0.2
    budget_min_per_second: float = 1.0
    budget_window: float = 10.0

    def __post_init__(self) -> None:
        positive_int("max_attempts", self.max_attempts)
        for name in ("base_delay", "max_delay", "max_retry_after"):
            positive_number(name, getattr(self, name), zero=True)
        positive_number("timeout", self.timeout, optional=True)
        positive_number("budget_ratio", self.budget_ratio, zero=True)
        positive_number("budget_min_per_second", self.budget_min_per_second, zero=True)
        positive_number("budget_window", self.budget_window)
        for name in ("on_rate_limited", "on_server_error", "on_connection", "on_timeout"):
            flag(name, getattr(self, name))

    def retries(self, kind: FailureKind) -> bool:
        """Whether a failure of ``kind`` is worth another attempt under this policy."""
        if kind == "rate_limited":
            return self.on_rate_limited
        if kind == "server":
            return self.on_server_error
        if kind == "connection":
            return self.on_connection
        if kind == "timeout":
            return self.on_timeout
        return False


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When :class:`~vex_llm.resilience.CircuitBreaker` opens and how it recovers.

    Over the last ``window`` seconds, once at least ``min_calls`` calls were counted and
    ``failure_rate`` of them failed, the circuit opens: calls fail at once for ``open_for``
    seconds, then one probe is let through (half-open). A successful probe closes the
    circuit; a failed one opens it again for twice as long, up to ``max_open_for``.

    Failures are 5xx, timeouts, connection failures and malformed answers; a 4xx is an
    answer (the backend is up) and counts as a success; a 429 is not counted at all unless
    ``count_rate_limited``.
    """

    failure_rate: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    open_for: float = 10.0
    max_open_for: float = 120.0
    count_rate_limited: bool = False

    def __post_init__(self) -> None:
        number_in("failure_rate", self.failure_rate, 0, 1, optional=False, above_low=True)
        positive_int("min_calls", self.min_calls)
        for name in ("window", "open_for", "max_open_for"):
            positive_number(name, getattr(self, name))
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be at least open_for")
        flag("count_rate_limited", self.count_rate_limited)
