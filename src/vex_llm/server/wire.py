"""The OpenAI chat-completions wire format, inbound. Pure: bytes in, values out.

A request body becomes an :class:`LLMRequest` or a :class:`WireError` (HTTP 400) naming the
offending ``param`` the way OpenAI does (``messages[0].content``). The rule is the proxy's:
*change nothing it does not have to*. Every field the client sent reaches the upstream: the
ones every provider has are typed (messages with their parts, names and tool calls, sampling,
tools, ``response_format``, ``n``, logprobs), and every other field — ``max_completion_tokens``,
``user``, ``metadata``, ``reasoning_effort``, ``extra_body`` fields such as ``top_k``, fields
invented next month — travels in ``LLMRequest.extra`` exactly as it came. A *known* field
with the wrong type or out of range is a 400 naming it; an unknown one never is. A lone
surrogate (``"\\ud800"``, which JSON can carry and UTF-8 cannot) is a 400 naming its field.
The ``Cache-Control`` header is :mod:`vex_llm.server.cache_control`'s; the way out is
:mod:`vex_llm.server.encode`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vex_llm.frozen_json import MAX_JSON_DEPTH
from vex_llm.models import (
    ROLES,
    TYPED_REQUEST_FIELDS,
    CacheControl,
    LLMRequest,
    Message,
    extra_fields,
)
from vex_llm.validation import int_between as _integer
from vex_llm.validation import json_type as _json_type
from vex_llm.validation import number_between as _number

__all__ = [
    "ChatRequest",
    "WireError",
    "decode_body",
    "error_json",
    "parse_chat_request",
]


class WireError(Exception):
    """A request the proxy refuses: HTTP ``status`` and OpenAI's error fields."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.type = type
        self.code = code

    def body(self) -> dict[str, Any]:
        """The error as OpenAI's JSON error object."""
        return error_json(self.message, self.type, self.param, self.code)


def error_json(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A parsed chat-completions call: the request, the model asked for, the stream flags."""

    request: LLMRequest
    model: str
    stream: bool
    include_usage: bool


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


# A lone surrogate can only come from a \\uD800-\\uDFFF escape: raw UTF-8 cannot encode one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _decode(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise WireError(f"request body is not valid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:
        raise WireError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise WireError("request body is nested too deeply") from None
    _check_depth(doc, 0)
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(doc, "")
        if where is not None:
            raise WireError(
                "a string holds a lone UTF-16 surrogate, which is not text",
                param=where or None,
            )
    return doc


def decode_body(body: bytes) -> Any:
    """A request body's JSON (any door's), or a :class:`WireError`: not UTF-8, not JSON,
    nested too deeply, or holding a lone surrogate."""
    return _decode(body)


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise WireError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, dict | list):
                _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _check_depth(item, depth + 1)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _lone_surrogate(value: Any, where: str) -> str | None:
    """The param path of the first string (or key) holding a lone surrogate, else None."""
    if isinstance(value, str):
        return None if _is_text(value) else where
    if isinstance(value, dict):
        for name, item in value.items():
            path = f"{where}.{name}" if where else name
            if not _is_text(name):
                return where or "body"
            found = _lone_surrogate(item, path)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


# -- the known fields' shapes: (check, what it must be) --------------------------------------


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: v in choices


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _bias(v: Any) -> bool:
    return isinstance(v, dict) and all(_number(-100, 100)(x) for x in v.values())


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _stop(v: Any) -> bool:
    stops = [v] if isinstance(v, str) else v
    return (
        isinstance(stops, list)
        and 0 < len(stops) <= 4
        and all(isinstance(s, str) and s for s in stops)
    )


def _tool_choice(v: Any) -> bool:
    return v in ("none", "auto", "required") or (
        isinstance(v, dict) and isinstance(v.get("type"), str)
    )


def _response_format(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("type"), str)


_INT64 = 2**63
#: Every field OpenAI documents, with the shape it must have. ``None`` (JSON null) means
#: "unset" for every one of them and is passed on as sent.
_SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (_number(0, 2), "a number between 0 and 2"),
    "top_p": (_number(0, 1), "a number between 0 and 1"),
    "presence_penalty": (_number(-2, 2), "a number between -2 and 2"),
    "frequency_penalty": (_number(-2, 2), "a number between -2 and 2"),
    "max_tokens": (_integer(1, _INT64), "an integer of at least 1"),
    "max_completion_tokens": (_integer(1, _INT64), "an integer of at least 1"),
    "n": (_integer(1, 128), "an integer between 1 and 128"),
    "seed": (_integer(-_INT64, _INT64 - 1), "a 64-bit integer"),
    "stop": (_stop, "a string or an array of 1 to 4 non-empty strings"),
    "stream": (_is_bool, "a boolean"),
    "stream_options": (_is_object, "an object"),
    "logprobs": (_is_bool, "a boolean"),
    "top_logprobs": (_integer(0, 20), "an integer between 0 and 20"),
    "logit_bias": (_bias, "an object of token ids to numbers between -100 and 100"),
    "tools": (lambda v: isinstance(v, list), "an array of tools"),
    "tool_choice": (_tool_choice, "'none', 'auto', 'required' or an object with a 'type'"),
    "parallel_tool_calls": (_is_bool, "a boolean"),
    "response_format": (_response_format, "an object with a 'type'"),
    "user": (_is_str, "a string"),
    "metadata": (_str_map, "an object of strings"),
    "store": (_is_bool, "a boolean"),
    "service_tier": (_is_str, "a string"),
    "reasoning_effort": (_is_str, "a string"),
    "verbosity": (_is_str, "a string"),
    "modalities": (_strings, "an array of strings"),
    "prompt_cache_key": (_is_str, "a string"),
    "safety_identifier": (_is_str, "a string"),
}
_STREAM_OPTIONS = {"include_usage", "include_obfuscation"}


def _check_shapes(doc: Mapping[str, Any]) -> None:
    for name, (check, must_be) in _SHAPES.items():
        value = doc.get(name)
        if value is not None and not check(value):
            raise WireError(f"'{name}' must be {must_be}, not {_json_type(value)}", param=name)
    options = doc.get("stream_options")
    if options:
        for flag in _STREAM_OPTIONS.intersection(options):
            if options[flag] is not None and not isinstance(options[flag], bool):
                raise WireError(
                    f"'stream_options.{flag}' must be a boolean", param=f"stream_options.{flag}"
                )


def _messages(value: object) -> tuple[Message, ...]:
    if value is None:
        raise WireError("'messages' is required", param="messages")
    if not isinstance(value, list):
        raise WireError(f"'messages' must be an array, not {_json_type(value)}", param="messages")
    if not value:
        raise WireError("'messages' must hold at least one message", param="messages")
    messages = []
    for i, item in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise WireError(f"a message must be an object, not {_json_type(item)}", param=where)
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise WireError(f"role must be one of {sorted(ROLES)}", param=f"{where}.role")
        if "content" not in item and not item.get("tool_calls"):
            raise WireError("message content is required", param=f"{where}.content")
        content = item.get("content")
        if content is not None and not isinstance(content, str | list):
            raise WireError(
                f"content must be a string, an array of content parts or null, "
                f"not {_json_type(content)}",
                param=f"{where}.content",
            )
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise WireError(
                        "a content part must be an object with a string 'type'",
                        param=f"{where}.content[{j}]",
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise WireError(
                        "a text part needs 'text' as a string", param=f"{where}.content[{j}].text"
                    )
        try:
            messages.append(Message.from_openai(item, where))
        except (TypeError, ValueError) as exc:
            raise WireError(str(exc), param=_param_in(str(exc), where)) from None
    return tuple(messages)


def _param_in(message: str, where: str) -> str:
    """The most precise param an error message names (``messages[0].tool_calls[1]...``)."""
    first = message.split(" ", 1)[0]
    return first if first.startswith(where) else where


#: The typed fields ``LLMRequest`` takes as they are (messages, the model and stop are read
#: apart; stream is how the answer travels).
_TYPED = TYPED_REQUEST_FIELDS - {"messages", "model", "stop", "stream"}


def parse_chat_request(
    body: bytes,
    *,
    tenant_id: str | None,
    control: CacheControl | None = None,
    upstream_model: Mapping[str, str] | None = None,
) -> ChatRequest:
    """Parse a chat-completions body into a :class:`ChatRequest`, or raise :class:`WireError`.

    ``upstream_model`` maps the model names clients use to the names sent upstream (a
    model missing from it is sent as asked; the caller decides whether it exists).
    """
    doc = _decode(body)
    if not isinstance(doc, dict):
        raise WireError(f"request body must be a JSON object, not {_json_type(doc)}")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a non-empty string", param="model")
    _check_shapes(doc)
    messages = _messages(doc.get("messages"))
    fields: dict[str, Any] = {name: doc[name] for name in _TYPED if doc.get(name) is not None}
    stop = doc.get("stop")
    if stop is not None:
        fields["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    # Everything else travels as it came: known-but-untyped fields, unknown ones, and nulls
    # the client sent on purpose (the upstream sees exactly what it would have).
    extra = {name: value for name, value in doc.items() if name not in TYPED_REQUEST_FIELDS}
    options = doc.get("stream_options") or {}
    try:
        request = LLMRequest(
            messages=messages,
            tenant_id=tenant_id,
            model=(upstream_model or {}).get(model, model),
            cache=control or CacheControl(),
            extra=extra_fields(extra) if extra else None,
            **fields,
        )
    except (TypeError, ValueError) as exc:
        message = str(exc)
        first = message.split(" ", 1)[0].split(".", 1)[0].split("[", 1)[0]
        raise WireError(message, param=first if first in doc else None) from None
    return ChatRequest(
        request,
        model,
        bool(doc.get("stream")),
        bool(options.get("include_usage")),
    )
