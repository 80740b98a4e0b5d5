"""OpenAI's Chat Completions wire format, both ways, as pure functions (no I/O).

- :func:`build_payload`: an :class:`LLMRequest` as the JSON body to send, every field kept
  (typed fields under their OpenAI names, ``extra`` merged in as it came; a request read
  from Anthropic's format sends what :func:`~vex_llm.wire.anthropic_request.translated_extra`
  keeps of it).
- :func:`parse_completion`: a ``chat.completion`` object as an :class:`LLMResponse`, with the
  object itself kept as ``raw`` so that a proxy can hand it on unchanged.
- :class:`OpenAIStreamDecoder`: ``chat.completion.chunk`` events as :class:`Chunk`\\ s, one
  per event, each keeping its event as ``raw`` (the upstream's own chunk boundaries survive).
- :func:`assemble_completion` / :func:`completion_chunks`: a recorded stream as the
  ``chat.completion`` it amounts to, and a ``chat.completion`` as the chunks that would have
  streamed it — how a JSON hit is served from a stored stream and a stream hit from a stored
  JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from vex_llm.chat import Choice, ToolCall, ToolCallDelta
from vex_llm.errors import InvalidResponse
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import OPENAI_CHAT, Chunk, LLMRequest, LLMResponse, Usage
from vex_llm.wire.anthropic_messages import ANTHROPIC_MESSAGES
from vex_llm.wire.anthropic_request import translated_extra

#: ``json.loads`` without its per-call checks of the argument (always a str here).
_decode = json.JSONDecoder().decode

__all__ = [
    "OpenAIEventDecoder",
    "OpenAIStreamDecoder",
    "assemble_completion",
    "build_payload",
    "completion_chunks",
    "error_text",
    "parse_choices",
    "parse_completion",
    "usage_of",
]

_SAMPLING = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty")
_FLAGS = ("parallel_tool_calls", "n", "logprobs", "top_logprobs")


def build_payload(
    request: LLMRequest,
    model: str,
    *,
    stream: bool,
    seed_field: str = "seed",
    stream_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of a chat completion for ``request``; unset fields are left out.

    ``extra`` fields go in as they came. A stream always asks for usage (``stream_usage``)
    on top of the caller's own ``stream_options``; a non-streamed call sends none (the API
    refuses ``stream_options`` without ``stream``).
    """
    payload: dict[str, Any] = {
        "model": model,
        "messages": [m.to_openai() for m in request.conversation()],
    }
    for name in _SAMPLING:
        value = getattr(request, name)
        if value is not None:
            payload[name] = value
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.seed is not None:
        payload[seed_field] = request.seed
    if not request.plain:
        if request.tools:
            payload["tools"] = [t.to_openai() for t in request.tools]
        if request.tool_choice is not None:
            payload["tool_choice"] = request.tool_choice.value
        if request.response_format is not None:
            payload["response_format"] = request.response_format.value
        for name in _FLAGS:
            value = getattr(request, name)
            if value is not None:
                payload[name] = value
    extra: dict[str, Any] = request.extra.value if request.extra is not None else {}
    if request.raw_format == ANTHROPIC_MESSAGES:
        extra = translated_extra(request, "openai-compatible upstream")
    options = extra.pop("stream_options", None)
    payload.update(extra)
    if stream:
        payload["stream"] = True
        options = dict(options) if isinstance(options, Mapping) else {}
        if stream_usage:
            options["include_usage"] = True
        if options:
            payload["stream_options"] = options
    return payload


def usage_of(value: object) -> Usage | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidResponse("'usage' must be an object")
    prompt, completion = value.get("prompt_tokens", 0), value.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise InvalidResponse("usage token counts must be integers")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def error_text(doc: Mapping[str, Any]) -> str:
    error = doc.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


def _tool_calls(value: object, where: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidResponse(f"{where}.tool_calls must be an array")
    try:
        return tuple(
            ToolCall.from_openai(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(value)
        )
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"malformed tool call: {exc}") from None


def _opt_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidResponse(f"{what} must be a string")
    return value


def _choice(doc: object, position: int) -> Choice:
    where = f"choices[{position}]"
    if not isinstance(doc, dict):
        raise InvalidResponse(f"chat completion {where} is not an object")
    message = doc.get("message")
    if not isinstance(message, dict):
        raise InvalidResponse(f"chat completion {where} has no 'message' object")
    content = _opt_str(message.get("content"), f"{where}.message.content")
    calls = _tool_calls(message.get("tool_calls"), f"{where}.message")
    refusal = _opt_str(message.get("refusal"), f"{where}.message.refusal")
    if content is None and not any(
        value is not None for name, value in message.items() if name not in ("role", "content")
    ):
        # An answer with nothing in it would be cached and replayed as if it were one. One
        # with something else (a deprecated ``function_call``, ``audio``...) is an answer.
        raise InvalidResponse(f"chat completion {where} has no content, tool calls or refusal")
    finish = doc.get("finish_reason")
    index = doc.get("index", position)
    logprobs = doc.get("logprobs")
    return Choice(
        index=index if isinstance(index, int) else position,
        content=content or "",
        finish_reason=finish if isinstance(finish, str) else "stop",
        tool_calls=calls,
        refusal=refusal,
        logprobs=None if logprobs is None else FrozenJSON.of(logprobs, "logprobs"),
    )


def parse_completion(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a chat completion object (latency left at 0); ``raw`` is it."""
    return parse_choices(doc, fallback_model, "chat completion", _choice, OPENAI_CHAT)


def parse_choices(
    doc: dict[str, Any],
    fallback_model: str,
    what: str,
    choice: Callable[[Any, int], Choice],
    raw_format: str,
) -> LLMResponse:
    """An ``LLMResponse`` from an OpenAI answer object with ``choices`` (a ``what``, each
    choice read by ``choice``): the first choice's fields, every choice when there are more,
    the usage, and the object itself as ``raw`` in ``raw_format``."""
    if "error" in doc:
        raise InvalidResponse(f"backend answered an error object: {error_text(doc)}")
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidResponse(f"{what} has no 'choices'")
    parsed = tuple(choice(c, i) for i, c in enumerate(choices))
    first, model = parsed[0], doc.get("model")
    try:
        raw = FrozenJSON.of(doc, what)
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"{what} is not plain JSON: {exc}") from None
    return LLMResponse(
        content=first.content,
        model=model if isinstance(model, str) and model else fallback_model,
        usage=usage_of(doc.get("usage")) or Usage(),
        finish_reason=first.finish_reason,
        tool_calls=first.tool_calls,
        refusal=first.refusal,
        logprobs=first.logprobs,
        choices=parsed if len(parsed) > 1 else (),
        raw=raw,
        raw_format=raw_format,
    )


def _deltas(value: object) -> tuple[ToolCallDelta, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidResponse("stream delta 'tool_calls' must be an array")
    deltas = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("index", 0), int):
            raise InvalidResponse("a streamed tool call needs an integer 'index'")
        kind = item.get("type")
        body = item.get(kind if isinstance(kind, str) else "function") or {}
        if not isinstance(body, dict):
            raise InvalidResponse("a streamed tool call's function must be an object")
        arguments = body.get("arguments", body.get("input")) or ""
        deltas.append(
            ToolCallDelta(
                index=item.get("index", 0),
                id=_opt_str(item.get("id"), "tool call id"),
                name=_opt_str(body.get("name"), "tool call name"),
                arguments=_opt_str(arguments, "tool call arguments") or "",
                type=_opt_str(kind, "tool call type"),
            )
        )
    return tuple(deltas)


class OpenAIEventDecoder:
    """What OpenAI's streams share (chat and legacy completions): ``data:`` payloads of JSON
    chunks with a ``choices`` list, an optional usage-only chunk, ``[DONE]`` at the end.

    Each event becomes one chunk that keeps the event as ``raw`` (in ``raw_format``); its
    typed fields describe the event's first choice (:meth:`_choice`, per format), and a
    usage-only event carries ``usage``. ``finish_reason`` (the first choice's) and usage are
    also gathered into one terminal chunk (no ``raw``) when ``[DONE]`` arrives.
    :meth:`finish` raises ``InvalidResponse`` if ``[DONE]`` never came.
    """

    raw_format: ClassVar[str]

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, data: str) -> list[Chunk]:
        """The chunks carried by one event's data."""
        # The common event first, with as few calls as the checks allow: a stream miss
        # decodes every event of the answer, and a 13-event answer spent ~33 µs here.
        if self.done:
            raise InvalidResponse("stream continued after [DONE]")
        if not data.startswith("{") and data.strip() == "[DONE]":
            self.done = True
            return [
                Chunk(finish_reason=self._finish or "stop", usage=self._usage, model=self.model)
            ]
        try:
            doc = _decode(data)
        except ValueError as exc:
            raise InvalidResponse(f"stream event is not valid JSON ({exc})") from exc
        if type(doc) is not dict:
            raise InvalidResponse("stream event is not a JSON object")
        if "error" in doc:
            raise InvalidResponse(f"backend reported an error mid-stream: {error_text(doc)}")
        model = doc.get("model")
        if model and isinstance(model, str):
            self.model = model
        usage = doc.get("usage")
        if usage is not None:
            usage = self._usage = usage_of(usage)
        choices = doc.get("choices")
        if type(choices) is not list:
            raise InvalidResponse("stream chunk has no 'choices' list")
        if not choices:  # the usage-only chunk
            return [Chunk(usage=usage, model=self.model, raw=data, raw_format=self.raw_format)]
        choice = choices[0]
        if type(choice) is not dict:
            raise InvalidResponse("stream chunk choice is not an object")
        index = choice.get("index", 0)
        if type(index) is not int:
            raise InvalidResponse("stream chunk choice has no integer 'index'")
        finish = choice.get("finish_reason")
        if finish is not None and isinstance(finish, str) and (index == 0 or self._finish is None):
            self._finish = finish
        logprobs = choice.get("logprobs")
        delta, calls, refusal = self._fields(choice)
        # One Chunk per event, built once (a ``dataclasses.replace`` per event was a second);
        # by position (delta, finish_reason, usage, model, index, tool_calls, refusal,
        # logprobs, raw, raw_format): keywords cost a dict per event.
        return [
            Chunk(
                delta,
                None,
                None,
                self.model,
                index,
                calls,
                refusal,
                None if logprobs is None else FrozenJSON.of(logprobs, "logprobs"),
                data,
                self.raw_format,
            )
        ]

    def _fields(self, choice: dict[str, Any]) -> tuple[str, tuple[ToolCallDelta, ...], str | None]:
        """The format's own ``Chunk`` fields of one choice: text, tool-call pieces, refusal."""
        raise NotImplementedError

    def finish(self) -> None:
        """Check the stream ended properly (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("stream ended without its terminal 'data: [DONE]'")


class OpenAIStreamDecoder(OpenAIEventDecoder):
    """Turns the ``data:`` payloads of a chat completion stream into ``Chunk``\\ s: text,
    tool-call pieces and refusals of each event's first choice (see the base)."""

    raw_format = OPENAI_CHAT

    def _fields(self, choice: dict[str, Any]) -> tuple[str, tuple[ToolCallDelta, ...], str | None]:
        delta = choice.get("delta")
        if type(delta) is not dict:
            raise InvalidResponse("stream chunk choice has no 'delta' object")
        text = delta.get("content")
        if text is not None and not isinstance(text, str):
            raise InvalidResponse("stream delta 'content' is not a string")
        calls = delta.get("tool_calls")
        refusal = delta.get("refusal")
        return (
            text or "",
            () if calls is None else _deltas(calls),
            None if refusal is None else _opt_str(refusal, "stream delta 'refusal'"),
        )


# -- a recorded stream as one answer, and one answer as a stream -------------------------

_HEAD = ("id", "created", "model", "system_fingerprint", "service_tier")


#: Delta fields that name a thing rather than add to it: the first value stands (OpenAI sends
#: them once; Ollama's and Gemini's OpenAI endpoints repeat them in every delta).
_SET_ONCE = frozenset({"role", "id", "type", "index"})


def _accumulate(into: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Fold one delta into ``into`` the way streamed fields add up: text appends, lists
    extend, tool calls gather by their index, anything else takes the latest value."""
    for name, value in delta.items():
        if name == "tool_calls" and isinstance(value, list):
            calls: dict[int, dict[str, Any]] = into.setdefault("_calls", {})
            for piece in value:
                if not isinstance(piece, dict):
                    continue
                call = calls.setdefault(piece.get("index", 0), {})
                _accumulate(call, {k: v for k, v in piece.items() if k != "index"})
            continue
        current: Any = into.get(name)
        if (name in _SET_ONCE and current) or (name == "name" and value == current):
            continue  # sent again on every delta by some servers: the same value, not more
        if isinstance(value, str | list) and isinstance(current, type(value)):
            joined: Any = value
            into[name] = current + joined
        elif isinstance(value, dict) and isinstance(current, dict):
            _accumulate(current, value)
        elif value is not None or name not in into:
            into[name] = value


def assemble_completion(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``chat.completion`` a stream of ``chat.completion.chunk`` objects amounts to.

    Text and refusals are joined, tool calls assembled from their pieces, log-probabilities
    joined; the head (id, created, model, fingerprint, tier) comes from the first chunk that
    has it, usage from the last.
    """
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    for event in events:
        for name in _HEAD:
            if name not in head and event.get(name) is not None:
                head[name] = event[name]
        if event.get("usage") is not None:
            usage = event["usage"]
        for choice in event.get("choices") or ():
            index = choice.get("index", 0)
            state = choices.setdefault(
                index, {"message": {}, "logprobs": None, "finish_reason": None}
            )
            _accumulate(state["message"], choice.get("delta") or {})
            if choice.get("logprobs") is not None:
                if state["logprobs"] is None:
                    state["logprobs"] = {}
                _accumulate(state["logprobs"], choice["logprobs"])
            if choice.get("finish_reason") is not None:
                state["finish_reason"] = choice["finish_reason"]
    doc: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [],
    }
    for index in sorted(choices):
        state = choices[index]
        message = state["message"]
        message.pop("obfuscation", None)
        calls = message.pop("_calls", None)
        message.setdefault("role", "assistant")
        message.setdefault("content", None)
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        doc["choices"].append(
            {
                "index": index,
                "message": message,
                "logprobs": state["logprobs"],
                "finish_reason": state["finish_reason"],
            }
        )
    doc["usage"] = usage
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            doc[name] = head[name]
    return doc


def completion_chunks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects that stream ``doc`` (a ``chat.completion``).

    Per choice: the role, text and other message fields with the whole log-probabilities;
    then each tool call whole; then the finish reason. Last, usage with empty choices.
    """
    head = {
        name: doc[name]
        for name in ("id", "created", "model", "system_fingerprint", "service_tier")
        if name in doc
    }
    head["object"] = "chat.completion.chunk"

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": head.get("id"),
            "object": "chat.completion.chunk",
            "created": head.get("created"),
            "model": head.get("model"),
            **{k: head[k] for k in ("system_fingerprint", "service_tier") if k in head},
            "choices": choices,
        }

    chunks = []
    for position, choice in enumerate(doc.get("choices") or ()):
        index = choice.get("index", position)
        message = dict(choice.get("message") or {})
        calls = message.pop("tool_calls", None) or []
        delta = {"role": message.pop("role", "assistant"), **message}
        if delta.get("content") is None and calls:
            delta["content"] = None
        chunks.append(
            chunk(
                [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": choice.get("logprobs"),
                        "finish_reason": None,
                    }
                ]
            )
        )
        if calls:
            pieces = [{"index": i, **call} for i, call in enumerate(calls)]
            chunks.append(
                chunk(
                    [
                        {
                            "index": index,
                            "delta": {"tool_calls": pieces},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            )
        chunks.append(
            chunk(
                [
                    {
                        "index": index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason") or "stop",
                    }
                ]
            )
        )
    if doc.get("usage") is not None:
        chunks.append({**chunk([]), "usage": doc["usage"]})
    return chunks
