"""What the doors of OpenAI's completions and Responses APIs share: reading a body whole.

Such a body is not turned into chat: it becomes an :class:`LLMRequest` whose ``operation``
names its API and whose ``extra`` is the body as it came (bar ``model``, mapped to the
upstream's name, and ``stream``, which is how the answer travels), so the upstream receives
what the client sent. The fields this module knows are checked for their shape (a 400 naming
the field, never a 500); the rest is the upstream's to judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from vex_llm.models import CacheControl, LLMRequest, extra_fields
from vex_llm.server.wire import WireError, decode_body
from vex_llm.validation import int_between as integer
from vex_llm.validation import json_type
from vex_llm.validation import number_between as number

__all__ = [
    "Shapes",
    "check_shapes",
    "integer",
    "is_bool",
    "is_object",
    "is_str",
    "json_type",
    "number",
    "operation_request",
    "read_object",
    "stop",
    "utf8",
]

#: Field name -> (check, what it must be); JSON null always passes (it means "unset").
Shapes = Mapping[str, tuple[Callable[[Any], bool], str]]


def is_str(v: Any) -> bool:
    """A string."""
    return isinstance(v, str)


def is_bool(v: Any) -> bool:
    """A boolean."""
    return isinstance(v, bool)


def is_object(v: Any) -> bool:
    """An object."""
    return isinstance(v, dict)


def stop(v: Any) -> bool:
    """A stop sequence or an array of 1 to 4."""
    stops = [v] if isinstance(v, str) else v
    return (
        isinstance(stops, list) and 0 < len(stops) <= 4 and all(isinstance(s, str) for s in stops)
    )


def utf8(raw: str) -> bytes:
    """The upstream's JSON text ``raw`` as UTF-8 bytes (a lone surrogate it escaped is escaped
    again, not turned into bytes UTF-8 cannot hold)."""
    try:
        return raw.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(raw), separators=(",", ":")).encode("ascii")


def read_object(body: bytes) -> tuple[dict[str, Any], str]:
    """The body as a JSON object and the model it asks for; a :class:`WireError` otherwise."""
    doc = decode_body(body)
    if not isinstance(doc, dict):
        raise WireError(f"request body must be a JSON object, not {json_type(doc)}")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a non-empty string", param="model")
    return doc, model


def check_shapes(doc: Mapping[str, Any], shapes: Shapes) -> None:
    """A :class:`WireError` naming the first field of ``shapes`` that ``doc`` sets wrongly."""
    for name, (check, must_be) in shapes.items():
        value = doc.get(name)
        if value is not None and not check(value):
            raise WireError(f"'{name}' must be {must_be}, not {json_type(value)}", param=name)


def operation_request(
    doc: Mapping[str, Any],
    model: str,
    operation: str,
    *,
    tenant: str,
    control: CacheControl,
    upstream_model: Mapping[str, str],
) -> LLMRequest:
    """The request of ``operation`` carrying ``doc`` (see the module docstring)."""
    fields = {name: value for name, value in doc.items() if name not in ("model", "stream")}
    try:
        return LLMRequest(
            operation=operation,
            tenant_id=tenant,
            model=upstream_model.get(model, model),
            cache=control,
            extra=extra_fields(fields),
        )
    except (TypeError, ValueError) as exc:  # a JSON value the library cannot hold
        raise WireError(str(exc)) from None
