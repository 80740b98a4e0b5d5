"""``with_timeout``: a request given the time left for one attempt, without rebuilding it.

Retries and fallbacks give each attempt the time left before the request's deadline. With
``dataclasses.replace`` that is a new request built and checked field by field (messages,
tools, the raw body), which for a proxy's request costs more than a cache hit, on every miss,
to change one number. The request's other fields were checked when it was built and cannot
have changed since (it is frozen), so they are carried over as they are.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from vex_llm.embeddings import EmbeddingRequest
from vex_llm.models import LLMRequest
from vex_llm.validation import seconds

__all__ = ["with_timeout"]

Q = TypeVar("Q", LLMRequest, EmbeddingRequest)


def with_timeout(request: Q, timeout: float) -> Q:
    """``request`` with ``timeout`` (a positive number of seconds, checked) as its timeout."""
    kind = type(request)
    if kind is not LLMRequest and kind is not EmbeddingRequest:
        # A subclass's fields are not all in its own ``__slots__`` (its bases' are in
        # theirs; without slots, in its ``__dict__``), and it may check more: rebuilt.
        return dataclasses.replace(request, timeout=timeout)
    copy = object.__new__(kind)
    set_ = object.__setattr__
    for name in kind.__slots__:  # a frozen slots dataclass: every field is a slot
        set_(copy, name, getattr(request, name))
    set_(copy, "timeout", seconds("timeout", timeout, optional=False))
    return copy
