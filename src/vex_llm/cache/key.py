"""The cache key: SHA-256 over an unambiguous, versioned encoding of what changes the answer.

The encoding is a header line, then the raw UTF-8 texts of the conversation. The header is
``ascii()`` of a tuple in a fixed order, tenant first: a Python literal that
``ast.literal_eval`` reads back exactly (strings quoted and escaped, ``None`` distinct from
``""``), holding every answer-changing field plus the byte length of each text, so the texts
that follow split only one way. Hence no two distinct requests share an encoding (the
original crate joined raw strings with ``|``, and ``tenant="t", system="s"`` collided with
``system="t|s"``). ``ascii()`` escapes all non-ASCII, so the header does not depend on the
Python version's Unicode tables. The long texts skip escaping entirely, which keeps the key
cheap on the hit path. Timeouts and other volatile fields are left out; a layout change bumps
``KEY_VERSION``. Pure: no I/O, no ``hash()``, so every process computes the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from vex_llm.models import LLMRequest
from vex_llm.provider import LLMProvider

__all__ = ["KEY_VERSION", "cache_key", "key_material"]

KEY_VERSION = "vex-llm/key/v1"


def key_material(request: LLMRequest, identity: Sequence[str]) -> bytes:
    """The canonical bytes that :func:`cache_key` hashes (exposed for tests and debugging)."""
    roles: list[str] = []
    texts: list[bytes] = []
    if request.system is not None:
        roles.append("system")
        texts.append(request.system.encode("utf-8", "surrogatepass"))
    for message in request.messages:
        roles.append(message.role)
        texts.append(message.content.encode("utf-8", "surrogatepass"))
    if request.prompt:
        roles.append("user")
        texts.append(request.prompt.encode("utf-8", "surrogatepass"))
    header = ascii(
        (
            KEY_VERSION,
            request.tenant_id,
            request.cache.namespace,
            tuple(identity),
            request.model,
            tuple(roles),
            tuple(map(len, texts)),
            request.temperature,
            request.max_tokens,
            request.top_p,
            request.presence_penalty,
            request.frequency_penalty,
            request.stop,
            request.seed,
        )
    )
    return header.encode("ascii") + b"\n" + b"".join(texts)


def cache_key(request: LLMRequest, provider: LLMProvider | Sequence[str]) -> str:
    """The hex SHA-256 cache key of ``request`` sent to ``provider`` (or a provider identity).

    The system prompt plus prompt and the same turns given as ``messages`` are one
    conversation, so they share a key: the backend sees the same thing either way.
    """
    identity = provider.cache_identity() if isinstance(provider, LLMProvider) else provider
    return hashlib.sha256(key_material(request, identity)).hexdigest()
