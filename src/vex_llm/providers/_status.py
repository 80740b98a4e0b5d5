"""HTTP status -> the ``vex_llm.errors`` tree, and ``Retry-After``. Pure: no I/O, clock given.

Used by the transport (``providers._http``) on every non-2xx answer and by the resilience
layer to honour ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC

from vex_llm.errors import (
    AuthenticationFailed,
    LLMError,
    RateLimited,
    RequestFailed,
    ServerError,
)

__all__ = ["error_for_status", "parse_retry_after"]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or unusable.

    The value is either delta-seconds (``"120"``, fractions tolerated) or an HTTP date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is measured from ``now`` (epoch seconds).
    A date in the past means "now": 0.0. Garbage, negatives and non-finite numbers give None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(delay) or delay < 0:
        return None
    return delay


def error_for_status(
    status: int,
    body: str,
    retry_after: str | None = None,
    *,
    now: float | None = None,
) -> LLMError | None:
    """The typed error for an HTTP status, or None for a success (2xx/3xx).

    401/403 -> ``AuthenticationFailed``; 429 -> ``RateLimited`` with ``Retry-After`` parsed;
    other 4xx -> ``RequestFailed``; 5xx -> ``ServerError`` (both with a body excerpt; a 5xx
    with its ``Retry-After`` parsed too).
    """
    if status < 400:
        return None
    excerpt = " ".join(body.split())[:200]
    if status in (401, 403):
        return AuthenticationFailed(f"HTTP {status}: credentials rejected: {excerpt}")
    if status == 429:
        delay = parse_retry_after(retry_after, time.time() if now is None else now)
        return RateLimited(f"HTTP 429: rate limited: {excerpt}", retry_after=delay)
    if status >= 500:
        # A 503's Retry-After says when to come back (RFC 9110 §10.2.3): retries honour it.
        delay = parse_retry_after(retry_after, time.time() if now is None else now)
        return ServerError(status, excerpt, retry_after=delay)
    return RequestFailed(status, excerpt)
