"""The error tree of vex-llm: every failure a provider or the cache reports is an ``LLMError``.

Each provider maps transport and HTTP failures onto this tree at one boundary, so callers
branch on types, never on message text::

    LLMError
    ├── ConnectionFailed        the backend could not be reached
    ├── Timeout                 the whole response did not arrive in time
    ├── RateLimited             429; ``retry_after`` seconds, or None
    ├── AuthenticationFailed    401 / 403
    ├── RequestFailed           another 4xx; ``status`` and a short ``body`` excerpt
    │   └── ServerError         5xx
    ├── InvalidResponse         malformed JSON, missing fields, a stream cut short
    │   └── AnswerTooLarge      an answer or one of its lines over the configured cap
    ├── NotAvailable            the provider refuses to try (e.g. a circuit breaker is open);
    │                           ``retry_after`` seconds until it tries again, or None
    ├── InputTooLarge           a prompt or system prompt over the configured limit
    ├── UnsupportedFeature      the backend cannot honour a request field (named)
    └── CacheMiss               ``only_if_cached`` and nothing is stored

``InputTooLarge`` and ``UnsupportedFeature`` are also ``ValueError``: bad input for this
backend, raised before any I/O.
"""

from __future__ import annotations

__all__ = [
    "AnswerTooLarge",
    "AuthenticationFailed",
    "CacheMiss",
    "ConnectionFailed",
    "InputTooLarge",
    "InvalidResponse",
    "LLMError",
    "NotAvailable",
    "RateLimited",
    "RequestFailed",
    "ServerError",
    "Timeout",
    "UnsupportedFeature",
]

# A body excerpt in an error is for a human reading a log line, not for parsing.
_BODY_EXCERPT_CHARS = 200


class LLMError(Exception):
    """Root of every error vex-llm raises for a failed LLM call or cache lookup."""


class ConnectionFailed(LLMError):
    """The backend could not be reached (DNS, refused connection, reset before a response)."""


class Timeout(LLMError):
    """The response, body and stream included, did not complete within the request timeout."""


class RateLimited(LLMError):
    """The backend answered 429. ``retry_after`` is seconds to wait, or None when not given."""

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthenticationFailed(LLMError):
    """The backend rejected the credentials (401 or 403)."""


class RequestFailed(LLMError):
    """The backend rejected the request with an HTTP error status.

    ``body`` is a short excerpt of the response body (at most 200 characters), kept so that a
    log line says what the backend complained about without carrying whole responses around.
    """

    def __init__(self, status: int, body: str = "", message: str | None = None) -> None:
        excerpt = body[:_BODY_EXCERPT_CHARS]
        super().__init__(message or f"request failed with HTTP {status}: {excerpt}")
        self.status = status
        self.body = excerpt


class ServerError(RequestFailed):
    """The backend failed on its side (HTTP 5xx). ``retry_after`` is the seconds its
    ``Retry-After`` asked for (a 503 often says when to come back), or None."""

    def __init__(
        self,
        status: int,
        body: str = "",
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, body, message)
        self.retry_after = retry_after


class InvalidResponse(LLMError):
    """The backend answered, but not in the shape its wire format promises."""


class AnswerTooLarge(InvalidResponse):
    """The backend's answer (after decompression), or one line of a stream, is over the cap.

    Reading stops at the cap, so an oversized or endless answer costs bounded memory.
    """


class NotAvailable(LLMError):
    """The provider will not try the call now (for example, its circuit breaker is open).

    ``retry_after`` is how many seconds until it will try again, or None when unknown.
    """

    def __init__(self, message: str = "not available", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InputTooLarge(LLMError, ValueError):
    """A prompt or system prompt is larger than the configured limit; raised before any I/O."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field} is {size} bytes, over the limit of {limit} bytes")
        self.field = field
        self.size = size
        self.limit = limit


class UnsupportedFeature(LLMError, ValueError):
    """The backend cannot honour ``field`` (``provider`` names it); raised before any I/O.

    A field is never dropped silently: an answer to a different question than the one asked,
    cached and replayed, would be worse than this error.
    """

    def __init__(self, field: str, provider: str, why: str = "") -> None:
        reason = f": {why}" if why else ""
        super().__init__(f"{provider} cannot honour the request field {field!r}{reason}")
        self.field = field
        self.provider = provider


class CacheMiss(LLMError):
    """``only_if_cached`` was asked and no live entry exists; upstream was not called."""
