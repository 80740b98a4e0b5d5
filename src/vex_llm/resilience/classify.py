"""What kind of failure an exception is, for the resilience layers. Pure: no I/O.

Retries, the circuit breaker and fallbacks all branch on the same few kinds, decided here
once from the error tree (never from message text)::

    rate_limited   RateLimited (429)
    server         ServerError (5xx)
    connection     ConnectionFailed (the request never reached the backend)
    timeout        Timeout
    unavailable    NotAvailable (an open circuit breaker)
    invalid        InvalidResponse (a malformed or cut-short answer)
    client         every other LLMError: 4xx, bad credentials, input too large, cache miss
    other          anything that is not an LLMError (a bug: never retried, never counted)
"""

from __future__ import annotations

from typing import Literal

from vex_llm.errors import (
    ConnectionFailed,
    InvalidResponse,
    LLMError,
    NotAvailable,
    RateLimited,
    ServerError,
    Timeout,
)

__all__ = ["FAILURE_KINDS", "FailureKind", "failure_kind"]

FailureKind = Literal[
    "rate_limited", "server", "connection", "timeout", "unavailable", "invalid", "client", "other"
]

#: Every kind :func:`failure_kind` returns.
FAILURE_KINDS: tuple[FailureKind, ...] = (
    "rate_limited",
    "server",
    "connection",
    "timeout",
    "unavailable",
    "invalid",
    "client",
    "other",
)


def failure_kind(exc: BaseException) -> FailureKind:
    """The kind of ``exc`` (see the module docstring)."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, ServerError):
        return "server"
    if isinstance(exc, ConnectionFailed):
        return "connection"
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, NotAvailable):
        return "unavailable"
    if isinstance(exc, InvalidResponse):
        return "invalid"
    if isinstance(exc, LLMError):
        return "client"
    return "other"
