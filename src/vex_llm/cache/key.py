"""The cache key: SHA-256 over an unambiguous, versioned encoding of what changes the answer.

The encoding reads left to right with no guessing, so no two distinct requests share it (the
original crate joined raw strings with ``|``, and ``tenant="t", system="s"`` collided with
``system="t|s"``)::

    KEY_VERSION "\\n"  identity-strings "\\n"
    tenant namespace model  turn* "|"  temperature ";" max_tokens ";" top_p ";"
    presence_penalty ";" frequency_penalty ";" seed ";"  stop-strings "\\n"  texts  field*

A string is ``<length>:<chars>`` and None is ``~``, so a value never has to be escaped and
cannot be confused with a delimiter or with None (``""`` is ``0:``). A turn is a role letter
and the length of its text; the texts follow, concatenated, in turn order. A message with
more than a role and text (content parts, a name, tool calls, a tool result, extra fields)
is an upper-case role letter and the length of its JSON (``Message.to_openai``), which takes
its place among the texts: ``"a\\nb"`` and the parts ``["a", "b"]`` never meet. Numbers are
``repr``-ed (exact for floats; ``None`` when unset). After the texts, each richer field that
is set (the ``operation``, tools, tool_choice, parallel_tool_calls, response_format, n,
logprobs, top_logprobs, then the keyed ``extra`` fields) follows as ``name=<length>:<json>``,
in that order. A request of another ``operation`` (OpenAI's completions or responses) has
no turns or sampling fields: its whole body is in ``extra``, and the operation keeps it
apart from a chat request with the same fields.

Tenant comes first. Left out, because they cannot change the answer: ``timeout`` and the
cache controls other than ``namespace``, and the ``extra`` fields in :data:`UNKEYED_FIELDS`.
Every other ``extra`` field is keyed, known or not: a field the cache does not understand
might change the answer. A layout change bumps ``KEY_VERSION``. Pure: no I/O, no ``hash()``,
so every process computes the same key. The plain text chat is encoded without touching the
richer fields and with one UTF-8 pass, which keeps the key cheap: it is computed on every hit.

The key a store sees is ``<tenant tag>:<hex SHA-256>``. The tag (:func:`tenant_tag`) is a pure
function of the tenant alone: ``t`` and 16 hex digits of a SHA-256 of the tenant, encoded as
above (None is ``~``, so it has a tag of its own). The hash keeps entries apart; the tag only
lets a store find one tenant's entries without an index of its own, so it survives restarts
and is shared wherever the entries are: a SQLite primary-key range, a Redis ``SCAN MATCH``
pattern (fixed length, ``[0-9a-f]``: nothing to escape). Two tenants whose tags collide (a
64-bit hash, so in practice never) would only be cleared together.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence

from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import LLMRequest, Message
from vex_llm.provider import LLMProvider

__all__ = [
    "KEY_VERSION",
    "RICH_FIELDS",
    "ROLE_CODES",
    "TENANT_TAG_LENGTH",
    "UNKEYED_FIELDS",
    "TenantPrefixes",
    "cache_key",
    "hash_material",
    "identity_prefix",
    "key_material",
    "keyed_extra",
    "material_after",
    "short_key",
    "tenant_key_prefix",
    "tenant_tag",
]

KEY_VERSION = "vex-llm/key/v2"
#: Hashed with the tenant into its tag; a change of the tag's layout bumps it.
TENANT_TAG_VERSION = "vex-llm/tenant-tag/v1"
#: Characters in a tenant tag (``t`` and 16 hex digits); a store key is the tag, ``:``, a hash.
TENANT_TAG_LENGTH = 17

#: Request fields (in ``LLMRequest.extra``) that cannot change the answer, so they are not in
#: the key: streaming is how an answer travels, not what it says; ``user``,
#: ``safety_identifier`` and ``metadata`` label the caller for the provider's records;
#: ``store`` asks the provider to keep a copy; ``prompt_cache_key`` and ``service_tier`` steer
#: the provider's own caching and capacity, not the tokens sampled.
UNKEYED_FIELDS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
    }
)

#: The richer request fields, in the order the key writes them.
RICH_FIELDS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "n",
    "logprobs",
    "top_logprobs",
)

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
        # The common one-turn shape, without the list building (this runs on every hit); the
        # texts go straight into the material below (no ``system + prompt`` copy).
        if system is None:
            turns = f"u{len(prompt)};" if prompt else ""
            system = ""
        else:
            turns = f"s{len(system)};u{len(prompt)};" if prompt else f"s{len(system)};"
    else:
        turns, prompt = _turns_and_texts(system, request.messages, prompt)
        system = ""
    tenant, namespace, model = request.tenant_id, request.cache.namespace, request.model
    stop = "".join(f"{len(s)}:{s}" for s in request.stop) if request.stop else ""
    values = (
        request.temperature,
        request.max_tokens,
        request.top_p,
        request.presence_penalty,
        request.frequency_penalty,
        request.seed,
    )
    sampling = _SAMPLING.get(values) or _render_sampling(values)  # inline: every hit runs it
    material = (
        f"{prefix}"
        f"{'~' if tenant is None else f'{len(tenant)}:{tenant}'}"
        f"{'~' if namespace is None else f'{len(namespace)}:{namespace}'}"
        f"{'~' if model is None else f'{len(model)}:{model}'}"
        f"{turns}|{sampling}{stop}\n{system}{prompt}"
    )
    if not request.plain:
        material += _rich_fields(request)
    # surrogatepass: a str may hold lone surrogates (e.g. from JSON); they must hash too.
    return material.encode("utf-8", "surrogatepass")


def _turns_and_texts(
    system: str | None, messages: Sequence[Message], prompt: str
) -> tuple[str, str]:
    """The turn list and the concatenated texts of a request with ``messages``."""
    turn_list: list[str] = []
    text_list: list[str] = []
    if system is not None:
        turn_list.append(f"s{len(system)};")
        text_list.append(system)
    for message in messages:
        if message.plain:
            text = message.content
            turn_list.append(f"{ROLE_CODES[message.role]}{len(text)};")  # type: ignore[arg-type]
        else:
            text = _message_json(message)
            turn_list.append(f"{ROLE_CODES[message.role].upper()}{len(text)};")
        text_list.append(text)  # type: ignore[arg-type]
    if prompt:
        turn_list.append(f"u{len(prompt)};")
        text_list.append(prompt)
    return "".join(turn_list), "".join(text_list)


#: Rendered sampling fields by value: a handful of settings recur in every workload, and
#: ``repr`` of a float costs more than the rest of a hit's bookkeeping. Sound because
#: ``LLMRequest`` stores canonical values (floats as float without -0.0, ints as int), so
#: equal tuples render equally in every process. Bounded: when full, it starts over.
_SAMPLING: dict[tuple[float | int | None, ...], str] = {}
_SAMPLING_KEPT = 1024


def _render_sampling(values: tuple[float | int | None, ...]) -> str:
    """``temperature;max_tokens;top_p;presence_penalty;frequency_penalty;seed;`` (reprs),
    remembered in ``_SAMPLING``."""
    text = "".join(f"{value!r};" for value in values)
    if len(_SAMPLING) >= _SAMPLING_KEPT:
        _SAMPLING.clear()  # a workload of ever-new values: start over, stay bounded
    _SAMPLING[values] = text
    return text


def _message_json(message: Message) -> str:
    return json.dumps(message.to_openai(), ensure_ascii=False, separators=(",", ":"))


def _field(name: str, text: str) -> str:
    return f"{name}={len(text)}:{text}"


def keyed_extra(extra: FrozenJSON | None) -> str | None:
    """The JSON of ``extra`` without the :data:`UNKEYED_FIELDS` (None when nothing is left)."""
    if extra is None:
        return None
    fields = extra.value
    if not fields:
        return None
    if UNKEYED_FIELDS.isdisjoint(fields):
        return extra.text
    kept = {name: value for name, value in fields.items() if name not in UNKEYED_FIELDS}
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":")) if kept else None


def _rich_fields(request: LLMRequest) -> str:
    parts = []
    if request.operation is not None:
        parts.append(_field("operation", request.operation))
    if request.tools:
        parts.append(_field("tools", "[" + ",".join(t.spec.text for t in request.tools) + "]"))
    for name in RICH_FIELDS[1:]:
        value = getattr(request, name)
        if value is None:
            continue
        text = value.text if isinstance(value, FrozenJSON) else json.dumps(value)
        parts.append(_field(name, text))
    extra = keyed_extra(request.extra)
    if extra is not None:
        parts.append(_field("extra", extra))
    return "".join(parts)


def hash_material(material: bytes) -> str:
    """The hex SHA-256 of key material: the part of the cache key after the tenant tag."""
    return hashlib.sha256(material).hexdigest()


def tenant_tag(tenant: str | None) -> str:
    """The tag every store key of ``tenant``'s entries starts with: ``t`` and 16 hex digits.

    None (no tenant), ``""`` and every real tenant have different tags.
    """
    if tenant is not None and not isinstance(tenant, str):
        raise TypeError(f"a tenant is a str or None, not {type(tenant).__name__}")
    encoded = "~" if tenant is None else f"{len(tenant)}:{tenant}"
    material = f"{TENANT_TAG_VERSION}\n{encoded}".encode("utf-8", "surrogatepass")
    return "t" + hashlib.sha256(material).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def tenant_key_prefix(tenant: str | None) -> str:
    """What every store key of ``tenant``'s entries starts with: its tag and ``:``
    (remembered for the last 1024 tenants: a tag is a SHA-256)."""
    return tenant_tag(tenant) + ":"


def short_key(key: str) -> str:
    """The first 16 hex digits of a store key's hash (after its tenant tag): enough to tell
    requests apart in a message (the tag alone is the same for all of a tenant's)."""
    return key.rpartition(":")[2][:16]


class TenantPrefixes(dict[str | None, str]):
    """:func:`tenant_key_prefix` remembered per tenant, for the hit path: ``prefixes[tenant]``
    is one dict lookup, half the cost of the function's own memo (measured: ~40 ns against
    ~90 ns on a ~3.4 µs hit). Bounded: past ``limit`` tenants it starts over."""

    def __init__(self, limit: int = 4096) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, tenant: str | None) -> str:
        prefix = tenant_key_prefix(tenant)
        if len(self) >= self.limit:
            self.clear()
        self[tenant] = prefix
        return prefix


def cache_key(request: LLMRequest, provider: LLMProvider | Sequence[str]) -> str:
    """The store key of ``request`` sent to ``provider`` (or a provider identity): the
    request's :func:`tenant_tag`, ``:``, and the hex SHA-256 of its key material.

    The system prompt plus prompt and the same turns given as ``messages`` are one
    conversation, so they share a key: the backend sees the same thing either way.
    """
    identity = provider.cache_identity() if isinstance(provider, LLMProvider) else provider
    return tenant_key_prefix(request.tenant_id) + hash_material(key_material(request, identity))
