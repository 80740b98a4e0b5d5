"""Rate-limit headers in OpenAI's and Anthropic's styles, from a limiter's verdicts. Pure.

OpenAI answers every request with ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` and the same three for
``tokens``; the reset is a duration written the way Go prints one (``1s``, ``6m0s``,
``20ms``, ``1m30.5s``), which clients such as LiteLLM parse. Anthropic's API sends
``anthropic-ratelimit-requests-limit`` / ``-remaining`` / ``-reset`` (and ``tokens``), the
reset as the RFC 3339 time at which the limit is full again: that is what a client of the
Messages door reads. Only the parts a tenant is limited by are sent.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from vex_llm.quota.gcra import Rate, Verdict

__all__ = [
    "HeaderStyle",
    "anthropic_ratelimit_headers",
    "go_duration",
    "ratelimit_headers",
    "retry_after",
    "retry_after_seconds",
    "rfc3339",
]

#: Whose rate-limit headers an answer carries: OpenAI's or Anthropic's.
HeaderStyle = Literal["openai", "anthropic"]


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration`` prints it, to the millisecond (``6m0s``)."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def retry_after_seconds(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds - 1e-9)))


def retry_after(seconds: float) -> dict[str, str]:
    """``Retry-After`` and OpenAI's ``retry-after-ms``: the official SDKs read the
    milliseconds first, so a client waits 0.2 s for a token that is due in 0.2 s, not 1 s."""
    return {
        "retry-after": retry_after_seconds(seconds),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000 - 1e-6))),
    }


#: One limited part: its name (``requests`` or ``tokens``), its rate and current verdict.
_Part = tuple[str, Rate, Verdict]


def _parts(
    requests: tuple[Rate, Verdict] | None, tokens: tuple[Rate, Verdict] | None
) -> list[_Part]:
    return [(name, *part) for name, part in (("requests", requests), ("tokens", tokens)) if part]


def ratelimit_headers(
    requests: tuple[Rate, Verdict] | None, tokens: tuple[Rate, Verdict] | None
) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers for the limited parts (rate and current verdict)."""
    headers: dict[str, str] = {}
    for name, rate, verdict in _parts(requests, tokens):
        headers[f"x-ratelimit-limit-{name}"] = str(rate.limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(verdict.remaining)
        headers[f"x-ratelimit-reset-{name}"] = go_duration(verdict.reset)
    return headers


def rfc3339(epoch_seconds: float) -> str:
    """``epoch_seconds`` as an RFC 3339 UTC time to the second (``2026-11-29T13:05:10Z``),
    rounded up: a client waiting until then finds the limit refilled."""
    moment = datetime.fromtimestamp(math.ceil(epoch_seconds - 1e-6), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def anthropic_ratelimit_headers(
    requests: tuple[Rate, Verdict] | None, tokens: tuple[Rate, Verdict] | None, now: float
) -> dict[str, str]:
    """The ``anthropic-ratelimit-*`` headers for the limited parts; ``now`` is the wall
    clock (epoch seconds) the resets count from."""
    headers: dict[str, str] = {}
    for name, rate, verdict in _parts(requests, tokens):
        headers[f"anthropic-ratelimit-{name}-limit"] = str(rate.limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(verdict.remaining)
        headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(now + verdict.reset)
    return headers
