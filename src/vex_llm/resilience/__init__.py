"""Resilience in front of flaky providers: retries, circuit breakers and fallbacks.

Each is an ``LLMProvider`` wrapping others, so they stack with each other and with the
cache in any order; the proxy builds, per upstream,
``CachedProvider(RetryingProvider(CircuitBreaker(upstream)))`` and, where fallbacks are
configured, a ``FallbackProvider`` over those caches. The decisions (backoff, budget,
breaker state, failure kinds) are pure functions or small state machines with an injected
clock, in modules of their own.
"""

from vex_llm.resilience.backoff import RetryPlan, backoff_delay, plan_retry
from vex_llm.resilience.breaker import CircuitBreaker
from vex_llm.resilience.budget import RetryBudget
from vex_llm.resilience.circuit import Circuit, CircuitState
from vex_llm.resilience.classify import FailureKind, failure_kind
from vex_llm.resilience.fallback import DEFAULT_FALL_BACK_ON, FallbackProvider
from vex_llm.resilience.policy import BreakerPolicy, RetryPolicy
from vex_llm.resilience.retry import RetryCounters, RetryingProvider

__all__ = [
    "DEFAULT_FALL_BACK_ON",
    "BreakerPolicy",
    "Circuit",
    "CircuitBreaker",
    "CircuitState",
    "FailureKind",
    "FallbackProvider",
    "RetryBudget",
    "RetryCounters",
    "RetryPlan",
    "RetryPolicy",
    "RetryingProvider",
    "backoff_delay",
    "failure_kind",
    "plan_retry",
]
