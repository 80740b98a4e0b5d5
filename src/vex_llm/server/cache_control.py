"""The request's ``Cache-Control`` header -> :class:`~vex_llm.models.CacheControl`. Pure.

Parsed strictly, as RFC 9111 writes it: ``max-age`` is delta-seconds, ASCII digits only (a
``²`` or ``٣`` is a digit to ``str.isdigit`` but not to HTTP), optionally quoted; anything
else is a 400 naming the header. A value too large to mean anything is "a very long time":
RFC 9111 §1.2.2 caps delta-seconds at 2^31 s, so a 400-digit max-age is that, never a crash.
Unknown directives are ignored, as HTTP asks.
"""

from __future__ import annotations

import re
from typing import Any

from vex_llm.models import CacheControl
from vex_llm.server.wire import WireError

__all__ = ["MAX_DELTA_SECONDS", "cache_control"]

#: RFC 9111 §1.2.2: a larger delta-seconds is taken as this (about 68 years).
MAX_DELTA_SECONDS = 2**31

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# More digits than this is over MAX_DELTA_SECONDS whatever they are: int() is never asked
# to read thousands of them.
_MAX_DIGITS = len(str(MAX_DELTA_SECONDS))


def _delta_seconds(value: str, directive: str = "max-age") -> int:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _DIGITS.fullmatch(value):
        raise WireError(
            f"Cache-Control {directive} must be a whole number of seconds, got {value[:40]!r}",
            param="Cache-Control",
        )
    digits = value.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return MAX_DELTA_SECONDS
    return min(int(digits), MAX_DELTA_SECONDS)


def cache_control(header: str | None) -> CacheControl:
    """Map a request's ``Cache-Control`` header onto :class:`CacheControl`.

    ``no-cache`` (and ``max-age=0``, HTTP's "nothing stored will do") asks for a fresh answer
    that refreshes the entry; ``no-store`` keeps the answer out of the cache; ``max-age=N``
    stores the answer for at most N seconds (the shortest, if given twice); ``only-if-cached``
    answers from the cache or fails; ``stale-if-error=N`` accepts an answer up to N seconds
    past its ttl when the upstream fails (RFC 5861; 0 refuses stale answers).
    """
    if not header:
        return CacheControl()
    fields: dict[str, Any] = {}
    max_age: int | None = None
    for raw in header.split(","):
        name, _, value = raw.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            fields["no_cache"] = True
        elif name == "no-store":
            fields["no_store"] = True
        elif name == "only-if-cached":
            fields["only_if_cached"] = True
        elif name == "max-age":
            seconds = _delta_seconds(value.strip())
            max_age = seconds if max_age is None else min(max_age, seconds)
        elif name == "stale-if-error":
            fields["stale_if_error"] = float(_delta_seconds(value.strip(), name))
    if max_age == 0:
        fields["no_cache"] = True
    elif max_age is not None:
        fields["ttl"] = float(max_age)
    try:
        return CacheControl(**fields)
    except ValueError as exc:
        raise WireError(f"Cache-Control: {exc}", param="Cache-Control") from None
