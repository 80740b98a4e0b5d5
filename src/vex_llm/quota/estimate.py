"""How many tokens a request is counted for before its answer is known. Pure.

Before the call: the request body's bytes / 4 (about four bytes of English per token; the
body's JSON punctuation makes it an overestimate rather than an under-) plus the most the
answer may use: the request's ``max_tokens`` (``max_output_tokens`` on the Responses API),
as OpenAI itself counts a request against its tokens-per-minute limit. Without a maximum
only the prompt is reserved. After the call the count is settled with the usage the
upstream reported (see ``quota.gate``), so the estimate only decides who may start. A stream
that breaks off before its usage arrives is counted from what is known: the body and the text
it had produced (:func:`broken_off_usage`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vex_llm.models import Usage

__all__ = ["BYTES_PER_TOKEN", "broken_off_usage", "estimate_tokens"]

BYTES_PER_TOKEN = 4
_MAXIMA = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _maximum(max_tokens: int | None, extra: Mapping[str, Any] | None) -> int:
    if max_tokens is not None:
        return max_tokens
    for name in _MAXIMA:
        value = (extra or {}).get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def estimate_tokens(
    body_bytes: int, max_tokens: int | None = None, extra: Mapping[str, Any] | None = None
) -> int:
    """The tokens to reserve for a request of ``body_bytes`` bytes (at least 1).

    ``max_tokens`` is the request's typed maximum; ``extra`` the body fields a door keeps
    whole (legacy completions and Responses), searched for a maximum when there is none.
    """
    return max(1, math.ceil(body_bytes / BYTES_PER_TOKEN) + _maximum(max_tokens, extra))


def broken_off_usage(body_bytes: int, text_chars: int) -> Usage:
    """The usage of a stream that ended without reporting one (the client left, the upstream
    failed mid-way): ``body_bytes`` / 4 prompt tokens and ``text_chars`` (the text and
    tool-call arguments produced so far) / 4 completion tokens. The call was made and is
    billed; without a count it would be charged nothing."""
    return Usage(
        prompt_tokens=math.ceil(body_bytes / BYTES_PER_TOKEN),
        completion_tokens=math.ceil(text_chars / BYTES_PER_TOKEN),
    )
