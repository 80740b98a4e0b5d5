"""Anthropic's Messages API request, inbound: a ``/v1/messages`` body as typed fields (pure).

The proxy's Anthropic door reads a client's body here. The typed fields use OpenAI's
vocabulary, like every :class:`~vex_llm.models.LLMRequest`: ``system`` (a string, or text
blocks as a system turn of text parts), user and assistant turns with their blocks (text;
images as ``image_url`` parts, a base64 source as a ``data:`` URI; ``tool_use`` blocks as
the turn's tool calls; each ``tool_result`` block as a ``tool`` turn, in place), ``tools``
as function tools, ``tool_choice`` (``auto``/``any``/``tool``/``none``, with
``disable_parallel_tool_use`` as ``parallel_tool_calls``), ``stop_sequences``, ``max_tokens``
(required, as the API requires it), ``temperature``, ``top_p``. Every other field — ``top_k``,
``metadata``, ``thinking``, fields invented next month — goes to ``extra`` as it came, so it
reaches a backend and the cache key (unless it cannot change the answer: ``metadata``).

``cache_control`` hints steer Anthropic's prompt cache, not the answer, so they are left out
of the typed fields (an OpenAI-compatible backend has no use for them, and the cache key
ignores them); an Anthropic backend gets them anyway, because it is sent the body as it came
(``LLMRequest.raw``). A block type this module does not know stays a content part of that
type with its fields, so it is neither lost nor confused with another request.

Errors are :class:`BadRequest` naming the field the way the API does (``messages.0.content``).
:func:`translated_extra` says what of the rest an OpenAI-compatible backend is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vex_llm.cache.key import UNKEYED_FIELDS
from vex_llm.chat import ContentPart, Tool, ToolCall
from vex_llm.errors import UnsupportedFeature
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import TYPED_REQUEST_FIELDS, LLMRequest, Message
from vex_llm.validation import is_finite_number, is_int, json_type

__all__ = ["ANTHROPIC_ONLY_FIELDS", "BadRequest", "translated_extra", "typed_fields"]

#: Request fields only Anthropic's API understands: an OpenAI-compatible backend would ignore
#: them (answering another question than the one asked), so a translation refuses them.
ANTHROPIC_ONLY_FIELDS = frozenset(
    {"thinking", "container", "mcp_servers", "context_management", "output_config"}
)

#: Top-level fields read into typed ones (the rest go to ``extra``).
_TYPED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "stream",
    }
)
#: Fields that steer Anthropic's prompt cache only.
_HINTS = frozenset({"cache_control"})
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


class BadRequest(ValueError):
    """A request the API would refuse (HTTP 400): what is wrong, and where (``param``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(f"{param}: {message}" if param else message)
        self.param = param


def _need(ok: bool, param: str, must_be: str, value: object) -> None:
    if not ok:
        raise BadRequest(f"must be {must_be}, not {json_type(value)}", param)


def _without_hints(block: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in _HINTS and k not in skip}


# -- blocks -------------------------------------------------------------------------------


def _text_part(block: Mapping[str, Any], where: str) -> ContentPart:
    text = block.get("text")
    _need(isinstance(text, str), f"{where}.text", "a string", text)
    rest = _without_hints(block, "type", "text")
    return ContentPart("text", text, FrozenJSON.of(rest) if rest else None)


def _image_part(block: Mapping[str, Any], where: str) -> ContentPart:
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest(f"must be an object, not {json_type(source)}", f"{where}.source")
    kind = source.get("type")
    url: object
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        _need(isinstance(media_type, str), f"{where}.source.media_type", "a string", media_type)
        _need(isinstance(data, str), f"{where}.source.data", "a string", data)
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise BadRequest(f"must be a string, not {json_type(url)}", f"{where}.source.url")
    else:
        # A file id or another source: kept as it came (a backend that cannot read it says so).
        return _other_part(block)
    rest = _without_hints(block, "type", "source")
    return ContentPart("image_url", data=FrozenJSON.of({"image_url": {"url": url}, **rest}))


def _other_part(block: Mapping[str, Any]) -> ContentPart:
    rest = _without_hints(block, "type")
    return ContentPart(str(block["type"]), data=FrozenJSON.of(rest) if rest else None)


def _part(block: Mapping[str, Any], where: str) -> ContentPart:
    kind = block["type"]
    if kind == "text":
        return _text_part(block, where)
    if kind == "image":
        return _image_part(block, where)
    return _other_part(block)


def _checked_block(block: object, where: str) -> Mapping[str, Any]:
    _need(isinstance(block, dict), where, "an object", block)
    assert isinstance(block, dict)
    _need(isinstance(block.get("type"), str), f"{where}.type", "a string", block.get("type"))
    return block


def _content(parts: list[ContentPart]) -> str | tuple[ContentPart, ...]:
    """One plain text block reads as text (the common case); anything else as parts."""
    if len(parts) == 1 and parts[0].type == "text" and parts[0].data is None:
        return parts[0].text or ""
    return tuple(parts)


def _tool_call(block: Mapping[str, Any], where: str) -> ToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    _need(isinstance(call_id, str), f"{where}.id", "a string", call_id)
    _need(isinstance(name, str), f"{where}.name", "a string", name)
    _need(isinstance(arguments, dict), f"{where}.input", "an object", arguments)
    text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ToolCall(str(call_id), str(name), text)


def _tool_result(block: Mapping[str, Any], where: str) -> Message:
    call_id = block.get("tool_use_id")
    _need(isinstance(call_id, str), f"{where}.tool_use_id", "a string", call_id)
    content = block.get("content", "")
    if isinstance(content, list):
        parts = [
            _part(_checked_block(b, f"{where}.content.{k}"), f"{where}.content.{k}")
            for k, b in enumerate(content)
        ]
        value: str | tuple[ContentPart, ...] = _content(parts) if parts else ""
    else:
        _need(isinstance(content, str), f"{where}.content", "a string or an array", content)
        value = content
    rest = _without_hints(block, "type", "tool_use_id", "content")  # is_error, ...
    return Message("tool", value, tool_call_id=call_id, extra=FrozenJSON.of(rest) if rest else None)


def _turns(item: Mapping[str, Any], where: str) -> list[Message]:
    """One Anthropic turn as OpenAI turns: tool results each become a ``tool`` turn, in place."""
    role = item.get("role")
    if role not in ("user", "assistant"):
        raise BadRequest("must be 'user' or 'assistant'", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return [Message(role, content)]
    if not isinstance(content, list):
        raise BadRequest(
            f"must be a string or an array, not {json_type(content)}", f"{where}.content"
        )
    out: list[Message] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []

    def flush() -> None:
        if parts or calls:
            out.append(Message(role, _content(parts) if parts else None, tool_calls=tuple(calls)))
            parts.clear()
            calls.clear()

    for k, raw in enumerate(content):
        at = f"{where}.content.{k}"
        block = _checked_block(raw, at)
        kind = block["type"]
        if kind == "tool_use" and role == "assistant":
            calls.append(_tool_call(block, at))
        elif kind == "tool_result" and role == "user":
            flush()
            out.append(_tool_result(block, at))
        elif kind in ("tool_use", "tool_result"):
            raise BadRequest(f"a {role} turn cannot hold a {kind} block", f"{at}.type")
        else:
            if calls:  # text after a call: the calls end one turn, the text starts another
                flush()
            parts.append(_part(block, at))
    flush()
    if not out:
        # An empty turn: kept, so the backend (not the proxy) says whether that is allowed.
        out.append(Message(role, "" if role == "user" else None))
    return out


def _messages(value: object) -> tuple[Message, ...]:
    _need(isinstance(value, list), "messages", "an array", value)
    assert isinstance(value, list)
    if not value:
        raise BadRequest("at least one message is required", "messages")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"messages.{i}"
        _need(isinstance(item, dict), where, "an object", item)
        messages += _turns(item, where)
    return tuple(messages)


def _system(value: object) -> str | Message:
    if isinstance(value, str):
        return value
    _need(isinstance(value, list), "system", "a string or an array of text blocks", value)
    assert isinstance(value, list)
    parts = []
    for k, raw in enumerate(value):
        block = _checked_block(raw, f"system.{k}")
        if block["type"] != "text":
            raise BadRequest("system blocks must be text blocks", f"system.{k}.type")
        parts.append(_text_part(block, f"system.{k}"))
    content = _content(parts)
    return content if isinstance(content, str) else Message("system", content)


# -- tools --------------------------------------------------------------------------------


def _tool(value: object, where: str) -> Tool:
    _need(isinstance(value, dict), where, "an object", value)
    assert isinstance(value, dict)
    kind = value.get("type", "custom")
    name = value.get("name")
    _need(isinstance(name, str) and bool(name), f"{where}.name", "a non-empty string", name)
    if kind not in ("custom", None) or "input_schema" not in value:
        # A server tool (web search, code execution...): kept as it came, under its type.
        rest = _without_hints(value, "type")
        return Tool(FrozenJSON.of({"type": str(kind), str(kind): rest}))
    schema = value["input_schema"]
    _need(isinstance(schema, dict), f"{where}.input_schema", "an object", schema)
    body: dict[str, Any] = {"name": name}
    if value.get("description") is not None:
        description = value["description"]
        _need(isinstance(description, str), f"{where}.description", "a string", description)
        body["description"] = description
    body["parameters"] = schema
    body.update(_without_hints(value, "type", "name", "description", "input_schema"))
    return Tool(FrozenJSON.of({"type": "function", "function": body}))


def _tool_choice(value: object) -> tuple[Any, bool | None]:
    """``(tool_choice, parallel_tool_calls)`` in OpenAI's words."""
    _need(isinstance(value, dict), "tool_choice", "an object", value)
    assert isinstance(value, dict)
    kind = value.get("type")
    disable = value.get("disable_parallel_tool_use")
    if disable is not None:
        _need(
            isinstance(disable, bool), "tool_choice.disable_parallel_tool_use", "a boolean", disable
        )
    parallel = False if disable else None
    if kind in _TOOL_CHOICES:
        return _TOOL_CHOICES[kind], parallel
    if kind == "tool":
        name = value.get("name")
        _need(isinstance(name, str), "tool_choice.name", "a string", name)
        return {"type": "function", "function": {"name": name}}, parallel
    raise BadRequest("must be 'auto', 'any', 'tool' or 'none'", "tool_choice.type")


# -- the request ----------------------------------------------------------------------------


def typed_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~vex_llm.models.LLMRequest` fields of a ``/v1/messages`` body (all but
    ``model``, tenant and cache controls, which are the caller's); :class:`BadRequest` if it
    is not one the API would take."""
    max_tokens = doc.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("Field required", "max_tokens")
    _need(is_int(max_tokens) and max_tokens >= 1, "max_tokens", "an integer >= 1", max_tokens)
    fields: dict[str, Any] = {"max_tokens": max_tokens}
    messages = _messages(doc.get("messages"))
    system = doc.get("system")
    if system is not None:
        head = _system(system)
        if isinstance(head, str):
            fields["system"] = head
        else:
            messages = (head, *messages)
    fields["messages"] = messages
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = doc.get(name)
        if value is not None:
            ok = is_finite_number(value) and 0 <= value <= high
            _need(ok, name, f"a number between 0 and {high:g}", value)
            fields[name] = value
    stops = doc.get("stop_sequences")
    if stops is not None:
        ok = isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)
        _need(ok, "stop_sequences", "an array of non-empty strings", stops)
        fields["stop"] = tuple(stops)
    stream = doc.get("stream")
    if stream is not None:
        _need(isinstance(stream, bool), "stream", "a boolean", stream)
    tools = doc.get("tools")
    if tools is not None:
        _need(isinstance(tools, list), "tools", "an array", tools)
        fields["tools"] = tuple(_tool(t, f"tools.{i}") for i, t in enumerate(tools))
    if doc.get("tool_choice") is not None:
        choice, parallel = _tool_choice(doc["tool_choice"])
        fields["tool_choice"] = choice
        if parallel is not None:
            fields["parallel_tool_calls"] = parallel
    top_k = doc.get("top_k")
    if top_k is not None:
        _need(is_int(top_k) and top_k >= 0, "top_k", "an integer >= 0", top_k)
    metadata = doc.get("metadata")
    if metadata is not None:
        _need(isinstance(metadata, dict), "metadata", "an object", metadata)
    # The rest as it came; a name the typed fields use (``n``, ``seed``...) is not Anthropic's
    # and would be mistaken for the typed one, so it is refused rather than guessed at.
    extra = {k: v for k, v in doc.items() if k not in _TYPED and k not in _HINTS}
    clash = sorted(TYPED_REQUEST_FIELDS.intersection(extra))
    if clash:
        raise BadRequest("Extra inputs are not permitted", clash[0])
    if extra:
        fields["extra"] = dict(sorted(extra.items()))
    return fields


# -- towards another API's backend --------------------------------------------------


def translated_extra(request: LLMRequest, provider: str) -> dict[str, Any]:
    """The ``extra`` fields to send another API's backend (OpenAI-compatible, Ollama) for a
    request read from a ``/v1/messages`` body: those that cannot change the answer
    (``metadata``...) are not sent (their meaning is Anthropic's), and what such a backend
    cannot honour — extended thinking, server tools, MCP servers — raises
    ``UnsupportedFeature`` naming the field."""
    for i, tool in enumerate(request.tools):
        if tool.type != "function":
            raise UnsupportedFeature(f"tools.{i}", provider, f"it runs no {tool.type} tools")
    fields: dict[str, Any] = request.extra.value if request.extra is not None else {}
    for name in sorted(ANTHROPIC_ONLY_FIELDS.intersection(fields)):
        if name == "thinking" and fields[name] == {"type": "disabled"}:
            continue
        raise UnsupportedFeature(name, provider, "it is Anthropic's own")
    return {k: v for k, v in fields.items() if k not in UNKEYED_FIELDS and k not in {"thinking"}}
