"""How long to wait before the next attempt, or why not to make one. Pure: no I/O, no clock.

:func:`plan_retry` is the whole retry decision except the budget: the failure's kind, the
attempts made, a 429's ``Retry-After`` and the time left before the request's deadline go
in; a :class:`RetryPlan` (a delay, or the reason to give up) comes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vex_llm.resilience.classify import FailureKind
from vex_llm.resilience.policy import RetryPolicy

__all__ = ["GiveUp", "RetryPlan", "backoff_delay", "plan_retry"]

#: Why no retry is made: the failure is not retryable, the attempts are used up, the
#: backend's Retry-After is longer than allowed or than the request can wait, or even the
#: backoff would overrun the deadline.
GiveUp = Literal["not_retryable", "attempts", "retry_after_too_long", "deadline"]


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """Retry after ``delay`` seconds, or (``delay`` None) give up for ``reason``."""

    delay: float | None
    reason: GiveUp | None = None


def backoff_delay(retry: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (1 for the first).

    A uniform time in ``[0, min(cap, base * 2**(retry-1))]`` ("full jitter", from AWS's
    study of backoff): clients that failed together do not retry together. ``rand`` returns
    a float in ``[0, 1)``.
    """
    ceiling = min(cap, base * 2.0 ** min(retry - 1, 60))
    return ceiling * rand()


def plan_retry(
    policy: RetryPolicy,
    *,
    kind: FailureKind,
    attempts: int,
    retry_after: float | None,
    remaining: float | None,
    rand: Callable[[], float],
) -> RetryPlan:
    """Whether and when to make attempt ``attempts + 1`` after a failure of ``kind``.

    ``retry_after`` is the backend's requested wait (429, 503), honoured as given: it is how long
    the backend told us not to come back. ``remaining`` is the time left before the
    request's deadline (None: no deadline). A wait that would not end before the deadline
    gives up at once, so the caller gets the error now rather than a timeout later.
    """
    if not policy.retries(kind):
        return RetryPlan(None, "not_retryable")
    if attempts >= policy.max_attempts:
        return RetryPlan(None, "attempts")
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return RetryPlan(None, "retry_after_too_long")
        delay = retry_after
    else:
        delay = backoff_delay(attempts, policy.base_delay, policy.max_delay, rand)
    if remaining is not None and delay >= remaining:
        return RetryPlan(None, "retry_after_too_long" if retry_after is not None else "deadline")
    return RetryPlan(delay)
