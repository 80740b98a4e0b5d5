"""Embedding cache keys and entries, pure: one key and one entry per input, never per batch.

The key material reads left to right with no guessing, like ``key``'s (a string is
``<length>:<chars>``, None is ``~``), under its own version tag, so an embedding key can
never equal a chat key::

    EMBEDDING_KEY_VERSION "\\n"  identity-strings "\\n"
    tenant namespace model dimensions keyed-extra "\\n"  ("s" text | "t" token-ids)

Tenant comes first. Left out, because they cannot change a vector: ``timeout``, the cache
controls other than ``namespace``, and the ``extra`` fields in ``key.UNKEYED_FIELDS``
(``user``...). Everything before the input is the same for a whole batch: it is rendered once
(:func:`embedding_prefix`) and each input appended (:func:`embedding_key`). The store key
(:func:`embedding_keys`) is the tenant's tag and ``:`` before that hash, as a chat key's
(``key.tenant_tag``), so a tenant's clear finds its vectors too.

An entry is a ``CacheEntry`` like a chat answer's, so every store keeps it unchanged: its
``LLMResponse`` holds the vector as base64 of little-endian float64 (``raw``, a JSON string:
exact, the very floats the upstream sent, and decoded ~50 times faster than a JSON array of
numbers, which matters when a whole batch hits), the model that made it, the input's share
of the batch's prompt tokens (what a hit saves) and ``raw_format`` :data:`EMBEDDING_FORMAT`,
which tells it from a chat answer.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Sequence

from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import keyed_extra, tenant_key_prefix
from vex_llm.embeddings import EmbeddingInput, EmbeddingRequest
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import LLMResponse, Usage

__all__ = [
    "EMBEDDING_FORMAT",
    "EMBEDDING_KEY_VERSION",
    "embedding_entry",
    "embedding_key",
    "embedding_keys",
    "embedding_prefix",
    "entry_vector",
    "token_shares",
]

EMBEDDING_KEY_VERSION = "vex-llm/embedding-key/v1"

#: ``raw_format`` of a stored embedding.
EMBEDDING_FORMAT = "vex.embedding"


def _s(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def embedding_prefix(identity: Sequence[str], request: EmbeddingRequest) -> str:
    """The part of every input's key material that the whole request shares."""
    ids = "".join(f"{len(s)}:{s}" for s in identity)
    dimensions = "~" if request.dimensions is None else str(request.dimensions)
    return (
        f"{EMBEDDING_KEY_VERSION}\n{ids}\n"
        f"{_s(request.tenant_id)}{_s(request.cache.namespace)}{_s(request.model)}"
        f"{dimensions};{_s(keyed_extra(request.extra))}\n"
    )


def embedding_key(prefix: str, item: EmbeddingInput) -> str:
    """The hex SHA-256 of one input's key material under ``prefix`` (the store key's tail)."""
    tail = f"s{item}" if isinstance(item, str) else "t" + ",".join(map(str, item))
    # surrogatepass: a str may hold lone surrogates (e.g. from JSON); they must hash too.
    return hashlib.sha256((prefix + tail).encode("utf-8", "surrogatepass")).hexdigest()


def embedding_keys(identity: Sequence[str], request: EmbeddingRequest) -> list[str]:
    """The store key of each of ``request``'s inputs, in order: the tenant's tag, ``:``, and
    the input's :func:`embedding_key`."""
    head = tenant_key_prefix(request.tenant_id)
    prefix = embedding_prefix(identity, request)
    return [head + embedding_key(prefix, item) for item in request.inputs]


def embedding_entry(
    vector: Sequence[float], model: str, tokens: int, latency_ms: float, stored_at: float
) -> CacheEntry:
    """The entry that stores one input's vector."""
    packed = base64.b64encode(struct.pack(f"<{len(vector)}d", *vector)).decode("ascii")
    response = LLMResponse(
        content="",
        raw=FrozenJSON(f'"{packed}"'),
        model=model,
        usage=Usage(prompt_tokens=tokens),
        latency_ms=latency_ms,
        finish_reason=None,
        raw_format=EMBEDDING_FORMAT,
    )
    return CacheEntry.of(response, stored_at)


def entry_vector(response: LLMResponse) -> tuple[float, ...]:
    """The vector an embedding entry's response holds; ``ValueError`` for anything else (a
    corrupt or foreign entry reads as a miss, never as a wrong vector)."""
    raw = response.raw
    if response.raw_format != EMBEDDING_FORMAT or raw is None:
        raise ValueError("not an embedding entry")
    text = raw.text
    if len(text) < 3 or text[0] != '"' or text[-1] != '"':
        raise ValueError("embedding entry holds no vector")
    try:
        packed = base64.b64decode(text[1:-1], validate=True)
    except ValueError as exc:
        raise ValueError(f"embedding entry is not base64: {exc}") from None
    if not packed or len(packed) % 8:
        raise ValueError("embedding entry is not a whole number of float64 values")
    values: tuple[float, ...] = struct.unpack(f"<{len(packed) // 8}d", packed)
    if not math.isfinite(sum(values)):
        raise ValueError("embedding entry holds a value that is not finite")
    return values


def token_shares(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` tokens split over inputs in proportion to ``weights`` (their lengths), whole
    numbers summing to ``total`` (largest remainders first; ties to the earlier input).

    Backends count a batch's tokens, not each input's; a hit later saves its input's share.
    """
    if not weights:
        return []
    whole = sum(weights)
    if whole <= 0:
        base, extra = divmod(total, len(weights))
        return [base + (1 if i < extra else 0) for i in range(len(weights))]
    exact = [total * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares
