"""The OpenAI chat-completions wire format, inbound. Pure: bytes in, values out.

A request body becomes an :class:`LLMRequest` or a :class:`WireError` (HTTP 400)
naming the offending ``param`` the way OpenAI does (``messages[0].content``). Features the
proxy does not carry (tools, several choices, log-probabilities, images...) are refused with
a clear 400 rather than silently dropped: an answer to a different question than the one
asked, cached and replayed, would be worse than an error. A ``Cache-Control`` request header
becomes a :class:`CacheControl`. The way out is :mod:`vex_llm.server.encode`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vex_llm.models import CacheControl, LLMRequest, Message

__all__ = [
    "ChatRequest",
    "WireError",
    "error_json",
    "parse_chat_request",
]

_ROLES = ("system", "developer", "user", "assistant")
_NUMBERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# Accepted and not forwarded: they do not change the answer.
_IGNORED = {"user", "metadata", "store", "service_tier"}
# Understood, and refused unless set to their neutral value.
_UNSUPPORTED = {
    "tools": "tool calling",
    "tool_choice": "tool calling",
    "functions": "function calling",
    "function_call": "function calling",
    "parallel_tool_calls": "tool calling",
    "logit_bias": "logit_bias",
    "logprobs": "log-probabilities",
    "top_logprobs": "log-probabilities",
    "response_format": "response_format other than text",
    "audio": "audio output",
    "modalities": "modalities other than text",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
    "reasoning_effort": "reasoning_effort",
}
_NEUTRAL: Mapping[str, Any] = {
    "logprobs": False,
    "logit_bias": {},
    "response_format": {"type": "text"},
    "modalities": ["text"],
}
_KNOWN = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    *_NUMBERS,
    *_IGNORED,
    *_UNSUPPORTED,
}


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


def _decode(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise WireError(f"request body is not valid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:
        raise WireError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise WireError("request body is nested too deeply") from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _content(value: object, param: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            where = f"{param}[{i}]"
            if not isinstance(part, dict) or "type" not in part:
                raise WireError("a content part must be an object with a 'type'", param=where)
            if part["type"] != "text":
                raise WireError(
                    f"content parts of type {part['type']!r} are not supported by this proxy; "
                    "only text parts are",
                    param=f"{where}.type",
                    code="unsupported_content",
                )
            if not isinstance(part.get("text"), str):
                raise WireError("a text part needs 'text' as a string", param=f"{where}.text")
            if set(part) - {"type", "text"}:
                raise WireError(
                    f"unsupported field(s) in a text part: {sorted(set(part) - {'type', 'text'})}",
                    param=where,
                )
            texts.append(part["text"])
        return "\n".join(texts)
    if value is None:
        raise WireError("message content is required", param=param)
    raise WireError(
        f"content must be a string or a list of text parts, not {_json_type(value)}", param=param
    )


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if _is_number(value):
        return "a number"
    return names.get(type(value), type(value).__name__)


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
        if role == "tool" or "tool_calls" in item or "function_call" in item:
            raise WireError(
                "tool and function messages are not supported by this proxy",
                param=where,
                code="unsupported_parameter",
            )
        if not isinstance(role, str) or role not in _ROLES:
            raise WireError(f"role must be one of {list(_ROLES)}", param=f"{where}.role")
        extra = set(item) - {"role", "content"}
        if extra:
            raise WireError(
                f"unsupported message field(s) {sorted(extra)}; only role and content are carried",
                param=f"{where}.{sorted(extra)[0]}",
                code="unsupported_parameter",
            )
        messages.append(Message(role, _content(item.get("content"), f"{where}.content")))
    return tuple(messages)


def _check_unsupported(doc: Mapping[str, Any]) -> None:
    for name, feature in _UNSUPPORTED.items():
        if name in doc and doc[name] is not None and doc[name] != _NEUTRAL.get(name, object()):
            raise WireError(
                f"{feature} is not supported by this proxy; remove '{name}'",
                param=name,
                code="unsupported_parameter",
            )
    n = doc.get("n")
    if n is not None and n != 1:
        raise WireError(
            "only one choice per request is supported (n must be 1)",
            param="n",
            code="unsupported_parameter",
        )


def _stream_flags(doc: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = doc.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise WireError("'stream' must be a boolean", param="stream")
    options = doc.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise WireError("'stream_options' supports only include_usage", param="stream_options")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise WireError(
                "'include_usage' must be a boolean", param="stream_options.include_usage"
            )
    return stream, include_usage


def _sampling(doc: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, field_name in _NUMBERS.items():
        value = doc.get(name)
        if value is None:
            continue
        if not _is_number(value) or not math.isfinite(value):
            raise WireError(f"'{name}' must be a number", param=name)
        fields[field_name] = value
    for name in ("max_completion_tokens", "max_tokens"):
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"'{name}' must be an integer", param=name)
        if value < 1:
            raise WireError(f"'{name}' must be at least 1, got {value}", param=name)
        fields.setdefault("max_tokens", value)
    seed = doc.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool) or abs(seed) >= 2**63:
            raise WireError("'seed' must be a 64-bit integer", param="seed")
        fields["seed"] = seed
    stop = doc.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise WireError(
                "'stop' must be a string or an array of non-empty strings", param="stop"
            )
        if len(stops) > 4:
            raise WireError("'stop' takes at most 4 sequences", param="stop")
        fields["stop"] = tuple(stops)
    return fields


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
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        raise WireError(f"unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a non-empty string", param="model")
    _check_unsupported(doc)
    for name in _IGNORED:
        if name == "user" and doc.get(name) is not None and not isinstance(doc[name], str):
            raise WireError("'user' must be a string", param="user")
    stream, include_usage = _stream_flags(doc)
    messages = _messages(doc.get("messages"))
    fields = _sampling(doc)
    try:
        request = LLMRequest(
            messages=messages,
            tenant_id=tenant_id,
            model=(upstream_model or {}).get(model, model),
            cache=control or CacheControl(),
            **fields,
        )
    except (TypeError, ValueError) as exc:
        message = str(exc)
        param = message.split(" ", 1)[0] if message.split(" ", 1)[0] in doc else None
        raise WireError(message, param=param) from None
    return ChatRequest(request, model, stream, include_usage)
