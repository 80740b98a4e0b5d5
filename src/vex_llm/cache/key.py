"""The cache key: SHA-256 over an unambiguous, versioned encoding of what changes the answer.

The encoding reads left to right with no guessing, so no two distinct requests share it (the
original crate joined raw strings with ``|``, and ``tenant="t", system="s"`` collided with
``system="t|s"``)::

    KEY_VERSION "\\n"  identity-strings "\\n"
    tenant namespace model  turn* "|"  temperature ";" max_tokens ";" top_p ";"
    presence_penalty ";" frequency_penalty ";" seed ";"  stop-strings "\\n"  texts

A string is ``<length>:<chars>`` and None is ``~``, so a value never has to be escaped and
cannot be confused with a delimiter or with None (``""`` is ``0:``). A turn is a role letter
and the length of its text; the texts follow, concatenated, in turn order. Numbers are
``repr``-ed (exact for floats; ``None`` when unset). Tenant comes first. Timeouts and other
volatile fields are left out; a layout change bumps ``KEY_VERSION``. Pure: no I/O, no
``hash()``, so every process computes the same key. Nothing is escaped or re-encoded beyond
one UTF-8 pass, which keeps the key cheap: it is computed on every cache hit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from vex_llm.models import LLMRequest
from vex_llm.provider import LLMProvider

__all__ = [
    "KEY_VERSION",
    "ROLE_CODES",
    "cache_key",
    "hash_material",
    "identity_prefix",
    "key_material",
    "material_after",
]

KEY_VERSION = "vex-llm/key/v1"

#: One letter per chat role; roles are a closed set (``Message`` validates them).
ROLE_CODES = {"system": "s", "developer": "d", "user": "u", "assistant": "a", "tool": "t"}


def identity_prefix(identity: Sequence[str]) -> str:
    """The constant head of every key material for one provider identity."""
    return f"{KEY_VERSION}\n{''.join(f'{len(s)}:{s}' for s in identity)}\n"


def _identity(identity: Sequence[str]) -> Sequence[str]:
    if isinstance(identity, str) or not all(isinstance(s, str) for s in identity):
        raise TypeError("a provider identity is a sequence of str, e.g. ('openai', url, model)")
    return identity


def key_material(request: LLMRequest, identity: Sequence[str]) -> bytes:
    """The canonical bytes that :func:`cache_key` hashes."""
    return material_after(identity_prefix(_identity(identity)), request)


def material_after(prefix: str, request: LLMRequest) -> bytes:
    """Key material for ``request`` after an :func:`identity_prefix` rendered in advance.

    ``CachedProvider`` renders its prefix once, keeping that work off the hit path.
    """
    system, prompt = request.system, request.prompt
    if not request.messages:
        # The common one-turn shape, without the list building (this runs on every hit).
        turns = "" if system is None else f"s{len(system)};"
        turns += f"u{len(prompt)};" if prompt else ""
        texts = prompt if system is None else system + prompt
    else:
        turn_list: list[str] = []
        text_list: list[str] = []
        if system is not None:
            turn_list.append(f"s{len(system)};")
            text_list.append(system)
        for message in request.messages:
            turn_list.append(f"{ROLE_CODES[message.role]}{len(message.content)};")
            text_list.append(message.content)
        if prompt:
            turn_list.append(f"u{len(prompt)};")
            text_list.append(prompt)
        turns, texts = "".join(turn_list), "".join(text_list)
    tenant, namespace, model = request.tenant_id, request.cache.namespace, request.model
    stop = "".join(f"{len(s)}:{s}" for s in request.stop) if request.stop else ""
    material = (
        f"{prefix}"
        f"{'~' if tenant is None else f'{len(tenant)}:{tenant}'}"
        f"{'~' if namespace is None else f'{len(namespace)}:{namespace}'}"
        f"{'~' if model is None else f'{len(model)}:{model}'}"
        f"{turns}|"
        f"{request.temperature!r};{request.max_tokens!r};{request.top_p!r};"
        f"{request.presence_penalty!r};{request.frequency_penalty!r};{request.seed!r};"
        f"{stop}\n{texts}"
    )
    # surrogatepass: a str may hold lone surrogates (e.g. from JSON); they must hash too.
    return material.encode("utf-8", "surrogatepass")


def hash_material(material: bytes) -> str:
    """The hex SHA-256 of key material: the cache key."""
    return hashlib.sha256(material).hexdigest()


def cache_key(request: LLMRequest, provider: LLMProvider | Sequence[str]) -> str:
    """The hex SHA-256 cache key of ``request`` sent to ``provider`` (or a provider identity).

    The system prompt plus prompt and the same turns given as ``messages`` are one
    conversation, so they share a key: the backend sees the same thing either way.
    """
    identity = provider.cache_identity() if isinstance(provider, LLMProvider) else provider
    return hash_material(key_material(request, identity))
