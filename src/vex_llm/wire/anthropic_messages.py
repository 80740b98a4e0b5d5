"""Anthropic's Messages API wire format, both ways, as pure functions (no I/O).

- :func:`build_payload`: an :class:`LLMRequest` (OpenAI's vocabulary) as a ``/v1/messages``
  body. System and developer turns go to ``system``; content parts become blocks; assistant
  tool calls become ``tool_use`` blocks and ``tool`` turns ``tool_result`` blocks in a user
  turn (consecutive turns of one role are merged: the API wants them alternating); tools,
  ``tool_choice`` and ``parallel_tool_calls`` take Anthropic's shapes. What the API cannot
  honour (seed, penalties, ``n`` > 1, logprobs, structured output, OpenAI-only fields) raises
  :class:`~vex_llm.errors.UnsupportedFeature` naming the field, never dropped.
- :func:`parse_message`: a ``message`` object as an :class:`LLMResponse` (text blocks joined,
  ``tool_use`` blocks as tool calls), the object kept as ``raw``.
- The stream's events are decoded by :mod:`vex_llm.wire.anthropic_stream`.

Stop reasons are given in OpenAI's vocabulary (``end_turn`` -> ``stop``, ``max_tokens`` ->
``length``, ``tool_use`` -> ``tool_calls``) so every provider's ``finish_reason`` means the
same thing.
"""

from __future__ import annotations

import json
from typing import Any

from vex_llm.chat import ContentPart, ToolCall
from vex_llm.errors import InvalidResponse, LLMError, RateLimited, ServerError, UnsupportedFeature
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import LLMRequest, LLMResponse, Message, Usage
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
    "ANTHROPIC_MESSAGES",
    "build_payload",
    "finish_reason",
    "int_field",
    "parse_message",
    "stream_error",
]

#: ``raw_format`` of an Anthropic answer (a ``message`` object, or the data of one stream
#: event per chunk, its SSE event name in ``raw_event``).
ANTHROPIC_MESSAGES = "anthropic.messages"

PROVIDER = "anthropic"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: ``tool_choice`` strings in Anthropic's words.
_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


def finish_reason(stop_reason: object) -> str:
    """Anthropic's ``stop_reason`` in OpenAI's vocabulary (unknown ones pass through)."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return "stop"
    return _STOP_REASONS.get(stop_reason, stop_reason)


def _unsupported(field: str, why: str = "") -> UnsupportedFeature:
    return UnsupportedFeature(field, PROVIDER, why)


# -- request ------------------------------------------------------------------------------


def _image(part: ContentPart, where: str) -> dict[str, Any]:
    image = (part.data.value if part.data is not None else {}).get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise _unsupported(f"{where}.image_url", "an image part needs an image_url.url")
    if image.get("detail", "auto") != "auto":  # type: ignore[union-attr]
        raise _unsupported(f"{where}.image_url.detail", "the API has no image detail level")
    if url.startswith("data:"):
        media_type, data = data_uri(url, f"{where}.image_url.url", PROVIDER)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _unsupported(f"{where}.image_url.url", "an image is an http(s) URL or a data: URI")


def _block(part: ContentPart, where: str, *, text_only: bool = False) -> dict[str, Any]:
    if part.type == "text" and part.text is not None:
        # A text part's other fields (cache_control...) are Anthropic's to read.
        return {"type": "text", "text": part.text, **(part.data.value if part.data else {})}
    if part.type == "image_url" and not text_only:
        return _image(part, where)
    why = "system turns take text only" if text_only else f"the API takes no {part.type} parts"
    raise _unsupported(where, why)


def _blocks(content: object, where: str, *, text_only: bool = False) -> list[dict[str, Any]]:
    """``content`` (text, parts or None) as a list of blocks; empty text makes no block."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    assert isinstance(content, tuple)
    return [_block(p, f"{where}.content[{j}]", text_only=text_only) for j, p in enumerate(content)]


def _tool_use(call: ToolCall, where: str) -> dict[str, Any]:
    if call.type != "function":
        raise _unsupported(f"{where}.type", f"the API calls no {call.type} tools")
    arguments = parsed_arguments(call.arguments, f"{where}.function.arguments", PROVIDER)
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}


def _turn(message: Message, where: str) -> dict[str, Any]:
    """One non-system message as an Anthropic turn (content a string when it is plain text)."""
    reject_message_extra(message, where, PROVIDER, allowed=())
    if message.name is not None:
        raise _unsupported(f"{where}.name", "the API has no speaker names")
    if message.role == "tool":
        if message.tool_call_id is None:
            raise _unsupported(f"{where}.tool_call_id", "a tool turn must name its call")
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if isinstance(message.content, str):
            result["content"] = message.content
        else:
            result["content"] = _blocks(message.content, where)
        return {"role": "user", "content": [result]}
    if message.tool_call_id is not None:
        raise _unsupported(f"{where}.tool_call_id", f"a {message.role} turn answers no call")
    if message.tool_calls:
        if message.role != "assistant":
            raise _unsupported(f"{where}.tool_calls", "only an assistant turn calls tools")
        blocks = _blocks(message.content, where)
        blocks += [
            _tool_use(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(message.tool_calls)
        ]
        return {"role": "assistant", "content": blocks}
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    return {"role": message.role, "content": _blocks(message.content, where)}


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _merged(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive turns of one role as one turn (their blocks in order)."""
    out: list[dict[str, Any]] = []
    for turn in turns:
        if out and out[-1]["role"] == turn["role"]:
            out[-1]["content"] = _as_blocks(out[-1]["content"]) + _as_blocks(turn["content"])
        else:
            out.append(turn)
    return out


def _system(messages: list[tuple[Message, str]]) -> str | list[dict[str, Any]] | None:
    """The ``system`` field: the texts joined when all are text, else text blocks."""
    if not messages:
        return None
    for message, where in messages:
        reject_message_extra(message, where, PROVIDER, allowed=())
        if message.name is not None:
            raise _unsupported(f"{where}.name", "the API has no speaker names")
    if all(isinstance(m.content, str) for m, _ in messages):
        return "\n\n".join(m.text for m, _ in messages)
    blocks: list[dict[str, Any]] = []
    for message, where in messages:
        blocks += _blocks(message.content, where, text_only=True)
    return blocks


def _tools(request: LLMRequest) -> list[dict[str, Any]]:
    tools = []
    for i, tool in enumerate(request.tools):
        where = f"tools[{i}]"
        if tool.type != "function":
            raise _unsupported(f"{where}.type", f"the API takes no {tool.type} tools")
        body = tool.spec.value["function"]
        unknown = sorted(set(body) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise _unsupported(f"{where}.function.{unknown[0]}")
        if body.get("strict"):
            raise _unsupported(f"{where}.function.strict", "strict tool schemas are a beta")
        spec: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            spec["description"] = tool.description
        # No parameters means no arguments; the API needs the schema spelled out.
        spec["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
        tools.append(spec)
    return tools


def _tool_choice(request: LLMRequest) -> dict[str, Any] | None:
    choice: dict[str, Any] | None = None
    if request.tool_choice is not None:
        value = request.tool_choice.value
        if isinstance(value, str) and value in _CHOICES:
            choice = {"type": _CHOICES[value]}
        elif (
            isinstance(value, dict)
            and value.get("type") == "function"
            and isinstance(value.get("function"), dict)
            and isinstance(value["function"].get("name"), str)
        ):
            choice = {"type": "tool", "name": value["function"]["name"]}
        else:
            raise _unsupported("tool_choice", f"the API has no tool choice {value!r}")
    if request.parallel_tool_calls is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":  # no call at all is at most one call
            choice["disable_parallel_tool_use"] = True
    return choice


def _refuse_unsupported(request: LLMRequest) -> None:
    chat_only(request, PROVIDER)
    for name in ("seed", "presence_penalty", "frequency_penalty"):
        if getattr(request, name) is not None:
            raise _unsupported(name, "the Messages API has none")
    if request.n is not None and request.n > 1:
        raise _unsupported("n", "the API gives one answer per request")
    if request.logprobs:
        raise _unsupported("logprobs", "the API gives no log-probabilities")
    if request.top_logprobs:
        raise _unsupported("top_logprobs", "the API gives no log-probabilities")
    if request.response_format is not None:
        kind = request.response_format.value.get("type")
        if kind != "text":
            raise _unsupported("response_format", f"the API has no {kind!r} response format")


def build_payload(
    request: LLMRequest, model: str, *, max_tokens_default: int, stream: bool
) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request``; ``UnsupportedFeature`` for what it cannot
    carry. ``max_tokens`` is required by the API: ``max_tokens_default`` fills it."""
    _refuse_unsupported(request)
    extra = extra_fields(request)
    for name in OPENAI_ONLY_FIELDS.intersection(extra):
        raise _unsupported(name, "it is OpenAI's own")
    offset = 0 if request.system is None else 1
    system: list[tuple[Message, str]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(request.conversation()):
        where = message_label(i, offset)
        if message.role in ("system", "developer"):
            system.append((message, where))
        else:
            turns.append(_turn(message, where))
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": max_completion_tokens(request, extra, PROVIDER) or max_tokens_default,
        "messages": _merged(turns),
    }
    system_field = _system(system)
    if system_field is not None:
        payload["system"] = system_field
    if request.temperature is not None:
        # Anthropic's range is 0..1; a higher value is the API's to refuse (HTTP 400), not
        # ours to clamp silently.
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    if request.tools:
        payload["tools"] = _tools(request)
    choice = _tool_choice(request)
    if choice is not None:
        payload["tool_choice"] = choice
    user = extra.pop("user", None)
    if user is not None:
        if not isinstance(user, str):
            raise TypeError("user must be a string")
        payload["metadata"] = {"user_id": user}
    for name, value in extra.items():
        if name in payload:
            raise _unsupported(name, "it would replace a field built from the request")
        payload[name] = value
    if stream:
        payload["stream"] = True
    return payload


# -- answer -------------------------------------------------------------------------------


def int_field(value: object, what: str) -> int:
    """``value`` as a token count, or ``InvalidResponse`` naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidResponse(f"Anthropic {what} must be an integer")
    return value


def _tool_call(block: dict[str, Any]) -> ToolCall:
    block_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(block_id, str) or not isinstance(name, str):
        raise InvalidResponse("Anthropic tool_use block needs a string 'id' and 'name'")
    return ToolCall(block_id, name, json.dumps(arguments, ensure_ascii=False))


def parse_message(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a Messages API ``message`` object (latency left at 0)."""
    if doc.get("type") == "error":
        raise stream_error(doc)
    content = doc.get("content")
    if not isinstance(content, list):
        raise InvalidResponse("Anthropic message has no 'content' list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise InvalidResponse("Anthropic text block has no string 'text'")
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    if not texts and not calls:
        # An answer with nothing in it would be cached and replayed as if it were one.
        raise InvalidResponse("Anthropic message has no text or tool_use content block")
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        raise InvalidResponse("Anthropic message has no 'usage'")
    model = doc.get("model")
    try:
        raw = FrozenJSON.of(doc, "anthropic message")
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"Anthropic message is not plain JSON: {exc}") from None
    return LLMResponse(
        content="".join(texts),
        model=model if isinstance(model, str) and model else fallback_model,
        usage=Usage(
            int_field(usage.get("input_tokens", 0), "input_tokens"),
            int_field(usage.get("output_tokens", 0), "output_tokens"),
        ),
        finish_reason=finish_reason(doc.get("stop_reason")),
        tool_calls=tuple(calls),
        raw=raw,
        raw_format=ANTHROPIC_MESSAGES,
    )


def stream_error(doc: dict[str, Any]) -> LLMError:
    """The typed error for an ``error`` event (or body), by Anthropic's error type."""
    error = doc.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    text = " ".join(str(message).split())[:200]
    if kind == "overloaded_error":
        return ServerError(529, text)
    if kind == "api_error":
        return ServerError(500, text)
    if kind == "rate_limit_error":
        return RateLimited(f"rate limited: {text}")
    return InvalidResponse(f"Anthropic reported {kind or 'an error'}: {text}")
