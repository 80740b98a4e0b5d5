"""Ollama's native chat API (``/api/chat``) wire format, both ways, as pure functions (no I/O).

- :func:`build_payload`: an :class:`LLMRequest` as an ``/api/chat`` body. Sampling fields go
  in ``options`` under Ollama's names (``num_predict`` for max_tokens), as do other ``extra``
  fields (``top_k``, ``num_ctx``...); tools keep OpenAI's shape; assistant tool calls carry
  their arguments as an object; a ``tool`` turn names its tool (``tool_name``); images given
  as ``data:`` URIs go to the message's ``images``; ``response_format`` becomes ``format``
  (``"json"`` or the JSON schema). What Ollama cannot honour (a forced tool choice, ``n`` > 1,
  logprobs, image URLs, OpenAI-only fields) raises :class:`~vex_llm.errors.UnsupportedFeature`.
- :func:`parse_chat`: a final (``done``) chat object as an :class:`LLMResponse`, kept as
  ``raw``; tool calls get their own id or ``call_<i>``.
- :class:`OllamaStreamDecoder`: one :class:`Chunk` per NDJSON line, keeping the line as
  ``raw``; tool calls (which Ollama streams whole) as one complete delta each; a terminal
  chunk (no ``raw``) after the ``done`` line with the finish reason and usage.
"""

from __future__ import annotations

import json
from typing import Any

from vex_llm.chat import ToolCall, ToolCallDelta
from vex_llm.errors import InvalidResponse, UnsupportedFeature
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Message, Usage
from vex_llm.wire.anthropic_messages import ANTHROPIC_MESSAGES
from vex_llm.wire.anthropic_request import translated_extra
from vex_llm.wire.translate import (
    OPENAI_ONLY_FIELDS,
    chat_only,
    data_uri,
    extra_fields,
    max_completion_tokens,
    message_label,
    parsed_arguments,
    reject_message_extra,
)

__all__ = [
    "OLLAMA_CHAT",
    "OllamaStreamDecoder",
    "build_payload",
    "parse_chat",
    "parse_line",
]

#: ``raw_format`` of an Ollama answer (the final ``/api/chat`` object, or one NDJSON line per
#: stream chunk).
OLLAMA_CHAT = "ollama.chat"

PROVIDER = "ollama"

_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}

#: ``extra`` fields that are top-level fields of ``/api/chat``, not model options.
_TOP_LEVEL = frozenset({"keep_alive", "think", "format"})

#: Message fields of Ollama's own that a caller may set through a message's ``extra``.
_MESSAGE_EXTRA = ("thinking", "images")


def _unsupported(field: str, why: str = "") -> UnsupportedFeature:
    return UnsupportedFeature(field, PROVIDER, why)


# -- request ------------------------------------------------------------------------------


def _content(message: Message, where: str) -> tuple[str, list[str]]:
    """The message's text and its images (base64, from ``data:`` URIs)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or "", []
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(message.content):
        at = f"{where}.content[{j}]"
        if part.type == "text" and part.text is not None:
            if part.data is not None:
                raise _unsupported(f"{at}.{next(iter(part.data.value))}")
            texts.append(part.text)
            continue
        if part.type != "image_url":
            raise _unsupported(at, f"Ollama takes no {part.type} parts")
        image = (part.data.value if part.data is not None else {}).get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.startswith("data:"):
            raise _unsupported(f"{at}.image_url.url", "Ollama takes images as data: URIs only")
        if image.get("detail", "auto") != "auto":  # type: ignore[union-attr]
            raise _unsupported(f"{at}.image_url.detail", "Ollama has no image detail level")
        images.append(data_uri(url, f"{at}.image_url.url", PROVIDER)[1])
    return "".join(texts), images


def _message(message: Message, where: str, tool_names: dict[str, str]) -> dict[str, Any]:
    extra = reject_message_extra(message, where, PROVIDER, allowed=_MESSAGE_EXTRA)
    text, images = _content(message, where)
    role = "system" if message.role == "developer" else message.role
    doc: dict[str, Any] = {"role": role, "content": text}
    if message.role == "tool":
        # Ollama ties a result to its call by the tool's name, not the call's id.
        name = message.name or tool_names.get(message.tool_call_id or "")
        if name is not None:
            doc["tool_name"] = name
    elif message.name is not None:
        raise _unsupported(f"{where}.name", "Ollama has no speaker names")
    elif message.tool_call_id is not None:
        raise _unsupported(f"{where}.tool_call_id", f"a {message.role} turn answers no call")
    if message.tool_calls:
        calls = []
        for k, call in enumerate(message.tool_calls):
            at = f"{where}.tool_calls[{k}]"
            if call.type != "function":
                raise _unsupported(f"{at}.type", f"Ollama calls no {call.type} tools")
            arguments = parsed_arguments(call.arguments, f"{at}.function.arguments", PROVIDER)
            calls.append({"function": {"name": call.name, "arguments": arguments}})
            tool_names[call.id] = call.name
        doc["tool_calls"] = calls
    images += extra.pop("images", None) or []
    if images:
        doc["images"] = images
    doc.update(extra)
    return doc


def _format(request: LLMRequest) -> object:
    if request.response_format is None:
        return None
    spec = request.response_format.value
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = spec.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            return schema["schema"]
        raise _unsupported("response_format.json_schema.schema", "a schema object is needed")
    raise _unsupported("response_format", f"Ollama has no {kind!r} response format")


def _refuse_unsupported(request: LLMRequest) -> None:
    chat_only(request, PROVIDER)
    if request.tool_choice is not None and request.tool_choice.value != "auto":
        raise _unsupported("tool_choice", "Ollama lets the model choose (auto) only")
    if request.parallel_tool_calls is False:
        raise _unsupported("parallel_tool_calls", "Ollama cannot limit the calls to one")
    if request.n is not None and request.n > 1:
        raise _unsupported("n", "Ollama gives one answer per request")
    if request.logprobs:
        raise _unsupported("logprobs", "not available through this provider")
    if request.top_logprobs:
        raise _unsupported("top_logprobs", "not available through this provider")
    for i, tool in enumerate(request.tools):
        if tool.type != "function":
            raise _unsupported(f"tools[{i}].type", f"Ollama takes no {tool.type} tools")


def build_payload(request: LLMRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The ``/api/chat`` body for ``request``; unset fields are left to the model's defaults."""
    _refuse_unsupported(request)
    if request.raw_format == ANTHROPIC_MESSAGES:
        translated_extra(request, PROVIDER)  # refuses what only Anthropic's API honours
    extra = extra_fields(request, keep=frozenset())
    for name in OPENAI_ONLY_FIELDS.intersection(extra):
        raise _unsupported(name, "it is OpenAI's own")
    options: dict[str, Any] = {}
    for ours, theirs in _OPTION_NAMES.items():
        value = getattr(request, ours)
        if value is not None:
            options[theirs] = value
    max_tokens = max_completion_tokens(request, extra, PROVIDER)
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    if request.stop:
        options["stop"] = list(request.stop)
    offset = 0 if request.system is None else 1
    tool_names: dict[str, str] = {}
    payload: dict[str, Any] = {
        "model": model,
        "messages": [
            _message(m, message_label(i, offset), tool_names)
            for i, m in enumerate(request.conversation())
        ],
        "stream": stream,
    }
    if request.tools:
        payload["tools"] = [t.to_openai() for t in request.tools]
    answer_format = _format(request)
    if answer_format is not None:
        payload["format"] = answer_format
    given = extra.pop("options", None)
    if given is not None and not isinstance(given, dict):
        raise TypeError("options must be an object")
    for name, value in [*(given or {}).items(), *extra.items()]:
        target = payload if name in _TOP_LEVEL else options
        if name in target:
            raise _unsupported(name, "it would replace a field built from the request")
        target[name] = value
    if options:
        payload["options"] = options
    return payload


# -- answer -------------------------------------------------------------------------------


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidResponse(f"Ollama field {name!r} must be an integer")
    return value


def _tool_calls(message: dict[str, Any], first: int) -> tuple[ToolCall, ...]:
    calls = message.get("tool_calls")
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise InvalidResponse("Ollama message 'tool_calls' must be an array")
    out = []
    for i, call in enumerate(calls, first):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidResponse("an Ollama tool call needs a function with a name")
        arguments = function.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = call.get("id")
        out.append(
            ToolCall(call_id if isinstance(call_id, str) else f"call_{i}", function["name"], text)
        )
    return tuple(out)


def parse_line(doc: dict[str, Any], first_call: int = 0) -> tuple[str, tuple[ToolCall, ...], bool]:
    """``(text, tool calls, done)`` from one ``/api/chat`` object; ``InvalidResponse`` if
    malformed. Tool calls without an id are numbered from ``first_call``."""
    if "error" in doc:
        raise InvalidResponse(f"Ollama reported an error: {str(doc['error'])[:200]}")
    message = doc.get("message")
    done = doc.get("done")
    if not isinstance(done, bool):
        raise InvalidResponse("Ollama chat object has no boolean 'done'")
    if message is None and done:
        return "", (), True
    if not isinstance(message, dict) or not isinstance(message.get("content", ""), str):
        raise InvalidResponse("Ollama chat object has no text 'message.content'")
    calls = _tool_calls(message, first_call)
    if "content" not in message and not calls:
        raise InvalidResponse("Ollama chat object has no text 'message.content'")
    return message.get("content", ""), calls, done


def _finish(doc: dict[str, Any], called: bool) -> tuple[str, Usage]:
    reason = doc.get("done_reason")
    usage = Usage(_count(doc, "prompt_eval_count"), _count(doc, "eval_count"))
    if called:
        return "tool_calls", usage
    return (reason if isinstance(reason, str) and reason else "stop"), usage


def _model(doc: dict[str, Any], fallback: str) -> str:
    model = doc.get("model")
    return model if isinstance(model, str) and model else fallback


def parse_chat(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a non-streamed ``/api/chat`` answer (latency left at 0)."""
    text, calls, done = parse_line(doc)
    if not done:
        raise InvalidResponse("Ollama answered a partial message to a non-streamed request")
    reason, usage = _finish(doc, bool(calls))
    try:
        raw = FrozenJSON.of(doc, "ollama chat")
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"Ollama answer is not plain JSON: {exc}") from None
    return LLMResponse(
        content=text,
        model=_model(doc, fallback_model),
        usage=usage,
        finish_reason=reason,
        tool_calls=calls,
        raw=raw,
        raw_format=OLLAMA_CHAT,
    )


class OllamaStreamDecoder:
    """Turns ``/api/chat`` NDJSON lines into ``Chunk``\\ s, one per line (kept as ``raw``).

    Ollama streams a tool call whole, in one line: it becomes one :class:`ToolCallDelta`
    with id, name and all its arguments. After the ``done`` line's chunk comes one terminal
    chunk (no ``raw``) with the finish reason (``tool_calls`` when the model called any) and
    usage. :meth:`finish` raises ``InvalidResponse`` if the ``done`` line never came.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._calls = 0

    def feed(self, line: str) -> list[Chunk]:
        """The chunks carried by one line (none for a blank line)."""
        if not line.strip():
            return []
        if self.done:
            raise InvalidResponse("Ollama stream continued after its 'done' line")
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise InvalidResponse(f"Ollama stream line is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise InvalidResponse("Ollama stream line is not a JSON object")
        text, calls, done = parse_line(doc, self._calls)
        self.model = _model(doc, self.model)
        deltas = tuple(
            ToolCallDelta(
                index=self._calls + k,
                id=c.id,
                name=c.name,
                arguments=c.arguments,
                type="function",
            )
            for k, c in enumerate(calls)
        )
        self._calls += len(calls)
        chunk = Chunk(
            delta=text, model=self.model, tool_calls=deltas, raw=line, raw_format=OLLAMA_CHAT
        )
        if not done:
            return [chunk]
        self.done = True
        reason, usage = _finish(doc, self._calls > 0)
        return [chunk, Chunk(finish_reason=reason, usage=usage, model=self.model)]

    def finish(self) -> None:
        """Check the stream ended with its ``done`` line (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("Ollama stream ended without its final 'done: true' line")
