"""OpenAI's Responses API (``POST /responses``), both ways, as pure functions.

The request is the client's body as it came (``LLMRequest.extra`` of an
:data:`~vex_llm.models.OPENAI_RESPONSES` request); answers keep the upstream's JSON:

- :func:`parse_response`: a ``response`` object as an :class:`LLMResponse` (``raw`` is the
  object): the text of its ``output_text`` parts, its function calls, refusal, usage, and a
  finish reason from its status (``completed``: ``stop``, or ``tool_calls`` when it calls
  one; ``incomplete``: ``length`` for ``max_output_tokens``).
- :class:`ResponsesStreamDecoder`: the typed SSE events (``response.created``, ...,
  ``response.output_text.delta``, ..., ``response.completed``) as :class:`Chunk`\\ s, one per
  event, each keeping its data as ``raw`` and its event name as ``raw_event``; after
  ``response.completed`` or ``response.incomplete``, the terminal chunk. A failed response
  (``response.failed``, an ``error`` event) raises: it is not an answer to cache.
- :func:`final_response` / :func:`response_events`: a recorded stream as the response it
  amounts to (its terminal event carries it whole), and a response as the events that would
  have streamed it (a JSON hit from a stored stream, a stream hit from a stored JSON answer).

Requests that depend on state kept upstream (:func:`stateful_field`: an earlier response,
a conversation, a stored item referred to, or a background run) are the proxy's to pass
through uncached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from vex_llm.chat import ToolCall, ToolCallDelta
from vex_llm.errors import InvalidResponse
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import OPENAI_RESPONSES, Chunk, LLMResponse, Usage

__all__ = [
    "STATEFUL_FIELDS",
    "TERMINAL_EVENTS",
    "ResponsesStreamDecoder",
    "final_response",
    "parse_response",
    "response_events",
    "stateful_field",
]

#: Request fields that make the answer depend on state the upstream keeps (an earlier
#: response, a conversation) or that defer it (``background``): such requests are not cached.
STATEFUL_FIELDS = ("previous_response_id", "conversation", "background")

#: The events that end a stream with an answer (which they carry whole).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})

_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def stateful_field(body: Mapping[str, Any]) -> str | None:
    """The first of :data:`STATEFUL_FIELDS` that ``body`` sets (not null, not false), or
    ``input[i]`` for an input item that refers to an item the upstream stored
    (``item_reference``); None for a request whose answer depends on its body alone."""
    field = next((name for name in STATEFUL_FIELDS if body.get(name) not in (None, False)), None)
    if field is None and isinstance(body.get("input"), list):
        for i, item in enumerate(body["input"]):
            if isinstance(item, dict) and item.get("type") == "item_reference":
                return f"input[{i}]"
    return field


def _error_text(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("input_tokens", 0), value.get("output_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise InvalidResponse("usage token counts must be integers")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _finish_reason(doc: Mapping[str, Any], calls: bool) -> str:
    status = doc.get("status")
    if status == "incomplete":
        details = doc.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _FINISH.get(str(reason), str(reason or "incomplete"))
    if status in (None, "completed"):
        return "tool_calls" if calls else "stop"
    return str(status)


def parse_response(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a ``response`` object (latency left at 0); ``raw`` is it."""
    if doc.get("status") == "failed" or (doc.get("error") and doc.get("object") != "response"):
        raise InvalidResponse(f"backend answered a failed response: {_error_text(doc['error'])}")
    output = doc.get("output")
    if not isinstance(output, list):
        raise InvalidResponse("response has no 'output' list")
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise InvalidResponse(f"response output[{i}] is not an object")
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    refusals.append(part["refusal"])
        elif item.get("type") == "function_call":
            try:
                calls.append(
                    ToolCall(item.get("call_id"), item.get("name"), item.get("arguments") or "")  # type: ignore[arg-type]
                )
            except TypeError as exc:
                raise InvalidResponse(f"response output[{i}] is a malformed call: {exc}") from None
    model = doc.get("model")
    try:
        raw = FrozenJSON.of(doc, "response")
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"response is not plain JSON: {exc}") from None
    return LLMResponse(
        content="".join(texts),
        model=model if isinstance(model, str) and model else fallback_model,
        usage=_usage(doc.get("usage")) or Usage(),
        finish_reason=_finish_reason(doc, bool(calls)),
        tool_calls=tuple(calls),
        refusal="".join(refusals) if refusals else None,
        raw=raw,
        raw_format=OPENAI_RESPONSES,
    )


class ResponsesStreamDecoder:
    """The events of a Responses stream as ``Chunk``\\ s (see the module docstring).

    Typed per event: ``response.output_text.delta`` gives text, ``response.refusal.delta`` a
    refusal piece, a function call's ``response.output_item.added`` and its
    ``response.function_call_arguments.delta`` the pieces of a tool call (indexed by output
    position). :meth:`finish` raises ``InvalidResponse`` if no terminal event came.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False

    def feed(self, event: str, data: str) -> list[Chunk]:
        """The chunks carried by one event (``event`` is its SSE name, ``message`` if none)."""
        if self.done:
            raise InvalidResponse("stream continued after its terminal event")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidResponse(f"stream event is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise InvalidResponse("stream event is not a JSON object")
        kind = doc.get("type")
        if kind == "error" or event == "error" or ("error" in doc and kind is None):
            raise InvalidResponse(
                f"backend reported an error mid-stream: {_error_text(doc.get('error', doc))}"
            )
        response = doc.get("response")
        if isinstance(response, dict):
            if isinstance(response.get("model"), str) and response["model"]:
                self.model = response["model"]
            if kind == "response.failed":
                error = response.get("error") or "the response failed"
                raise InvalidResponse(f"backend's response failed: {_error_text(error)}")
        chunk = Chunk(
            model=self.model,
            raw=data,
            raw_format=OPENAI_RESPONSES,
            raw_event=None if event == "message" else event,
        )
        if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
            chunk = _with(chunk, delta=doc["delta"])
        elif kind == "response.refusal.delta" and isinstance(doc.get("delta"), str):
            chunk = _with(chunk, refusal=doc["delta"])
        elif kind == "response.output_item.added":
            item = doc.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                piece = ToolCallDelta(
                    _index(doc),
                    _opt_str(item.get("call_id")),
                    _opt_str(item.get("name")),
                    _opt_str(item.get("arguments")) or "",
                    "function",
                )
                chunk = _with(chunk, tool_calls=(piece,))
        elif kind == "response.function_call_arguments.delta":
            piece = ToolCallDelta(_index(doc), arguments=_opt_str(doc.get("delta")) or "")
            chunk = _with(chunk, tool_calls=(piece,))
        elif kind in TERMINAL_EVENTS and isinstance(response, dict):
            self.done = True
            final = parse_response(response, self.model)
            return [
                chunk,
                Chunk(finish_reason=final.finish_reason, usage=final.usage, model=final.model),
            ]
        return [chunk]

    def finish(self) -> None:
        """Check the stream ended properly (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("stream ended without response.completed")


def _with(chunk: Chunk, **fields: Any) -> Chunk:
    return Chunk(
        model=chunk.model,
        raw=chunk.raw,
        raw_format=chunk.raw_format,
        raw_event=chunk.raw_event,
        **fields,
    )


def _index(doc: Mapping[str, Any]) -> int:
    index = doc.get("output_index", 0)
    if not isinstance(index, int):
        raise InvalidResponse("stream event 'output_index' must be an integer")
    return index


def _opt_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidResponse("a streamed function call field must be a string")
    return value


# -- a recorded stream as one answer, and one answer as a stream -------------------------


def final_response(events: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The response a recorded stream ended with (its terminal event's), or None."""
    last = None
    for event in events:
        if event.get("type") in TERMINAL_EVENTS and isinstance(event.get("response"), dict):
            last = event["response"]
    return last


def _opened(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` as its ``response.output_item.added`` event shows it: in progress, empty."""
    opened = {**item, "status": "in_progress"}
    if item.get("type") == "message":
        opened["content"] = []
    elif item.get("type") == "function_call":
        opened["arguments"] = ""
    return opened


def _empty_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("type") == "output_text":
        return {
            **part,
            "text": "",
            "annotations": [],
            **({"logprobs": []} if "logprobs" in part else {}),
        }
    if part.get("type") == "refusal":
        return {**part, "refusal": ""}
    return dict(part)


def _part_events(item: Mapping[str, Any], output_index: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    where = {"item_id": item.get("id"), "output_index": output_index}
    for content_index, part in enumerate(item.get("content") or ()):
        at = {**where, "content_index": content_index}
        events.append(("response.content_part.added", {**at, "part": _empty_part(part)}))
        if part.get("type") == "output_text":
            logprobs = part.get("logprobs") or []
            text = part.get("text", "")
            events.append(
                ("response.output_text.delta", {**at, "delta": text, "logprobs": logprobs})
            )
            events.append(("response.output_text.done", {**at, "text": text, "logprobs": logprobs}))
        elif part.get("type") == "refusal":
            refusal = part.get("refusal", "")
            events.append(("response.refusal.delta", {**at, "delta": refusal}))
            events.append(("response.refusal.done", {**at, "refusal": refusal}))
        events.append(("response.content_part.done", {**at, "part": dict(part)}))
    return events


def response_events(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events (name, data) that stream ``doc`` (a ``response``), numbered in sequence:
    ``response.created`` and ``response.in_progress`` with no output yet; per output item
    its ``added`` event, its content parts (each text whole in one delta) or a function
    call's arguments, its ``done`` event; then ``response.completed`` (or ``incomplete``)
    with the response itself."""
    pending = {**doc, "status": "in_progress", "output": [], "usage": None}
    if "incomplete_details" in doc:
        pending["incomplete_details"] = None
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    for output_index, item in enumerate(doc.get("output") or ()):
        events.append(
            ("response.output_item.added", {"output_index": output_index, "item": _opened(item)})
        )
        if item.get("type") == "message":
            events += _part_events(item, output_index)
        elif item.get("type") == "function_call":
            at = {"item_id": item.get("id"), "output_index": output_index}
            arguments = item.get("arguments", "")
            events.append(("response.function_call_arguments.delta", {**at, "delta": arguments}))
            done = {**at, "name": item.get("name"), "arguments": arguments}
            events.append(("response.function_call_arguments.done", done))
        events.append(("response.output_item.done", {"output_index": output_index, "item": item}))
    status = "response.incomplete" if doc.get("status") == "incomplete" else "response.completed"
    events.append((status, {"response": dict(doc)}))
    return [
        (name, {"type": name, **body, "sequence_number": number})
        for number, (name, body) in enumerate(events)
    ]
