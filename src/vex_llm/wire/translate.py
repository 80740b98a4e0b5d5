"""What every translation from OpenAI's request vocabulary to another API shares (pure).

A field is never dropped silently: what the target cannot carry raises
:class:`~vex_llm.errors.UnsupportedFeature` naming the field (``messages[2].name``,
``tool_choice``) and the provider. The exceptions are the fields that cannot change the
answer (:data:`~vex_llm.cache.key.UNKEYED_FIELDS`): they are not sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from vex_llm.cache.key import UNKEYED_FIELDS
from vex_llm.errors import UnsupportedFeature
from vex_llm.models import LLMRequest, Message

__all__ = [
    "OPENAI_ONLY_FIELDS",
    "chat_only",
    "data_uri",
    "extra_fields",
    "max_completion_tokens",
    "message_label",
    "parsed_arguments",
    "reject_message_extra",
]

#: Request fields only OpenAI's API understands: another backend would ignore them (or
#: refuse the request), so a translation refuses them, naming the field.
OPENAI_ONLY_FIELDS = frozenset(
    {
        "logit_bias",
        "reasoning_effort",
        "verbosity",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "functions",
        "function_call",
    }
)


def extra_fields(request: LLMRequest, keep: frozenset[str] = frozenset({"user"})) -> dict[str, Any]:
    """``request.extra`` without the fields that cannot change the answer (bar ``keep``)."""
    if request.extra is None:
        return {}
    fields: dict[str, Any] = request.extra.value
    return {k: v for k, v in fields.items() if k not in UNKEYED_FIELDS or k in keep}


def max_completion_tokens(request: LLMRequest, extra: dict[str, Any], provider: str) -> int | None:
    """``max_tokens``, or OpenAI's newer name for it (popped from ``extra``); both set must
    agree."""
    value = extra.pop("max_completion_tokens", None)
    if value is None:
        return request.max_tokens
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"max_completion_tokens must be a positive integer, got {value!r}")
    if request.max_tokens is not None and request.max_tokens != value:
        raise UnsupportedFeature("max_completion_tokens", provider, "it contradicts max_tokens")
    return value


def chat_only(request: LLMRequest, provider: str) -> None:
    """``UnsupportedFeature`` for a request of another API than chat (``operation``): only
    OpenAI-compatible backends speak OpenAI's completions and Responses APIs."""
    if request.operation is not None:
        raise UnsupportedFeature(
            "operation",
            provider,
            f"it speaks no {request.operation} API (only OpenAI-compatible upstreams do)",
        )


def message_label(position: int, offset: int) -> str:
    """How to name the message at ``position`` of ``conversation()`` in an error."""
    return "system" if position < offset else f"messages[{position - offset}]"


def reject_message_extra(
    message: Message, where: str, provider: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    """The message's ``extra`` fields the target takes (``allowed``); others that say
    something (not null, not empty) raise ``UnsupportedFeature``. Clients echo an earlier
    answer's ``refusal: null`` or ``annotations: []``, which say nothing."""
    if message.extra is None:
        return {}
    kept: dict[str, Any] = {}
    for name, value in message.extra.value.items():
        if name in allowed:
            kept[name] = value
        elif value not in (None, [], {}, ""):
            raise UnsupportedFeature(f"{where}.{name}", provider)
    return kept


def parsed_arguments(arguments: str, where: str, provider: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as the object a backend wants."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        raise UnsupportedFeature(where, provider, "the arguments are not valid JSON") from None
    if not isinstance(value, dict):
        raise UnsupportedFeature(where, provider, "the arguments are not a JSON object")
    return value


def data_uri(url: str, where: str, provider: str) -> tuple[str, str]:
    """``(media_type, base64 data)`` of a ``data:<type>;base64,<data>`` URI."""
    head, comma, data = url.partition(",")
    media_type, _, encoding = head.removeprefix("data:").partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise UnsupportedFeature(where, provider, "a data: URI must be data:<type>;base64,...")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedFeature(where, provider, "the data: URI is not valid base64") from None
    return media_type, data
