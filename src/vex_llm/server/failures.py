"""How an upstream or cache failure becomes an HTTP answer. Pure: no I/O.

Upstream errors are passed on, never retried here (a client retries on its own schedule, and
the Retry-After we pass on says when): 429 keeps the upstream's Retry-After, capped; a broken,
unreachable or misbehaving upstream is 502; a slow one is 504; an ``only-if-cached`` miss is
504 as HTTP's ``only-if-cached`` asks. Messages are scrubbed of every configured secret before
they leave, in case an upstream echoes a key back in an error body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from vex_llm.errors import (
    AnswerTooLarge,
    AuthenticationFailed,
    CacheMiss,
    ConnectionFailed,
    InputTooLarge,
    InvalidResponse,
    LLMError,
    NotAvailable,
    RateLimited,
    RequestFailed,
    ServerError,
    Timeout,
    UnsupportedFeature,
)
from vex_llm.redaction import redact
from vex_llm.server.wire import WireError

__all__ = ["Failure", "failure_for", "retry_after_header"]


@dataclass(frozen=True, slots=True)
class Failure:
    """An error answer: status, OpenAI error fields and extra headers."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def as_wire(self) -> WireError:
        """The same failure as a :class:`WireError` (for the JSON body)."""
        return WireError(
            self.message, param=self.param, status=self.status, type=self.type, code=self.code
        )


def retry_after_header(retry_after: float | None, cap: float) -> str | None:
    """The Retry-After value to pass on: whole seconds, at least 1, at most ``cap``."""
    if retry_after is None or math.isnan(retry_after):
        return None
    seconds = min(max(retry_after, 1.0), cap)
    return str(math.ceil(seconds))


def failure_for(exc: LLMError, *, retry_after_cap: float, secrets: Iterable[str] = ()) -> Failure:
    """The HTTP failure for ``exc`` raised by the cache or the upstream behind it."""
    detail = redact(str(exc), secrets)
    if isinstance(exc, CacheMiss):
        return Failure(
            504,
            "only-if-cached was requested and no cached answer exists; the upstream was not called",
            "cache_miss",
            "cache_miss",
        )
    if isinstance(exc, RateLimited):
        headers = {}
        value = retry_after_header(exc.retry_after, retry_after_cap)
        if value is not None:
            headers["retry-after"] = value
        return Failure(
            429, f"upstream rate limit: {detail}", "rate_limit_error", "rate_limited", None, headers
        )
    if isinstance(exc, Timeout):
        return Failure(504, f"upstream timed out: {detail}", "upstream_error", "upstream_timeout")
    if isinstance(exc, InputTooLarge):
        return Failure(400, detail, "invalid_request_error", "input_too_large", "messages")
    if isinstance(exc, UnsupportedFeature):
        return Failure(400, detail, "invalid_request_error", "unsupported_parameter", exc.field)
    if isinstance(exc, AuthenticationFailed):
        # The upstream refused the proxy's own credentials: the operator's problem, not the
        # client's, so not a 401 the client would take as "your key is wrong".
        return Failure(
            502,
            "the upstream rejected the proxy's credentials",
            "upstream_error",
            "upstream_auth_failed",
        )
    if isinstance(exc, ServerError):
        return Failure(
            502, f"upstream error (HTTP {exc.status}): {detail}", "upstream_error", "upstream_error"
        )
    if isinstance(exc, RequestFailed):
        # The upstream refused the request itself (e.g. context too long): the client's to fix.
        status = exc.status if 400 <= exc.status < 500 else 502
        return Failure(
            status,
            f"upstream refused the request: {detail}",
            "invalid_request_error",
            "upstream_rejected",
        )
    if isinstance(exc, ConnectionFailed):
        return Failure(
            502, f"upstream unreachable: {detail}", "upstream_error", "upstream_unreachable"
        )
    if isinstance(exc, AnswerTooLarge):
        return Failure(
            502,
            f"upstream answer too large: {detail}",
            "upstream_error",
            "upstream_answer_too_large",
        )
    if isinstance(exc, InvalidResponse):
        return Failure(
            502, f"upstream sent an invalid answer: {detail}", "upstream_error", "upstream_invalid"
        )
    if isinstance(exc, NotAvailable):
        # An open circuit breaker says when it will let a call through again.
        value = retry_after_header(exc.retry_after, retry_after_cap)
        return Failure(
            503,
            f"upstream not available: {detail}",
            "upstream_error",
            "unavailable",
            None,
            {"retry-after": value} if value is not None else {},
        )
    return Failure(502, f"upstream failed: {detail}", "upstream_error", "upstream_error")
