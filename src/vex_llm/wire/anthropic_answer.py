"""Anthropic's Messages API answers, outbound and reassembled (pure, no I/O).

- :func:`message_json`: a typed :class:`LLMResponse` (from any backend) as a ``message``
  object: text and ``tool_use`` blocks, ``stop_reason`` in Anthropic's words, usage.
- :class:`MessageStreamEncoder`: typed chunks as the event stream the API sends —
  ``message_start``, ``content_block_start`` / ``_delta`` (``text_delta``,
  ``input_json_delta``) / ``_stop``, a ``ping`` after the first block starts,
  ``message_delta`` with the stop reason and usage, ``message_stop``.
- :func:`message_events`: the events that stream a whole ``message`` (a stored answer
  replayed as a stream); :func:`assemble_message`: the ``message`` a stream's events amount to
  (a stored stream answered as JSON). The two are inverses on every block type they know.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from vex_llm.models import Chunk, LLMResponse, Usage

__all__ = [
    "MessageStreamEncoder",
    "assemble_message",
    "message_events",
    "message_json",
    "stop_reason",
]

Event = tuple[str, dict[str, Any]]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: str | None) -> str:
    """An OpenAI-vocabulary ``finish_reason`` as Anthropic's ``stop_reason``."""
    return _STOP_REASONS.get(finish_reason or "stop", finish_reason or "end_turn")


def _input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object a ``tool_use`` block holds (``{}`` when they
    are not a JSON object: the block must hold one)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def message_json(response: LLMResponse, *, message_id: str, model: str) -> dict[str, Any]:
    """``response`` as a Messages API ``message`` object."""
    content: list[dict[str, Any]] = []
    if response.content:
        content.append({"type": "text", "text": response.content})
    for call in response.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(response.finish_reason),
        "stop_sequence": None,
        "usage": _usage(response.usage),
    }


def _start(message_id: str, model: str) -> Event:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    return "message_start", {"type": "message_start", "message": message}


def _block_start(index: int, block: dict[str, Any]) -> Event:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _block_stop(index: int) -> Event:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


_PING: Event = ("ping", {"type": "ping"})
_STOP: Event = ("message_stop", {"type": "message_stop"})


class MessageStreamEncoder:
    """Typed chunks (any backend's) in, Anthropic stream events out; see the module docstring.

    Text opens a text block, each tool call (by its OpenAI index) a ``tool_use`` block whose
    argument text arrives as ``input_json_delta``; a block closes when another opens or the
    answer ends. The terminal chunk's finish reason and usage make the ``message_delta``.
    """

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id = message_id
        self.model = model
        self._started = False
        self._pinged = False
        self._index = -1
        self._open: tuple[str, int] | None = None

    def feed(self, chunk: Chunk) -> list[Event]:
        """The events ``chunk`` makes (none for one that says nothing Anthropic's could)."""
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(_start(self.message_id, chunk.model or self.model))
        if chunk.delta:
            if self._open != ("text", 0):
                events += self._start_block(("text", 0), {"type": "text", "text": ""})
            events.append(_block_delta(self._index, {"type": "text_delta", "text": chunk.delta}))
        for piece in chunk.tool_calls:
            if self._open != ("tool", piece.index):
                block = {"type": "tool_use", "id": piece.id or "", "name": piece.name or ""}
                events += self._start_block(("tool", piece.index), {**block, "input": {}})
            if piece.arguments:
                delta = {"type": "input_json_delta", "partial_json": piece.arguments}
                events.append(_block_delta(self._index, delta))
        if chunk.is_final:
            events += self._close()
            if not self._pinged:
                self._pinged = True
                events.append(_PING)
            usage = _usage(chunk.usage or Usage())
            end: dict[str, Any] = {
                "stop_reason": stop_reason(chunk.finish_reason),
                "stop_sequence": None,
            }
            events.append(
                ("message_delta", {"type": "message_delta", "delta": end, "usage": usage})
            )
            events.append(_STOP)
        return events

    def _start_block(self, which: tuple[str, int], block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._index += 1
        self._open = which
        events.append(_block_start(self._index, block))
        if not self._pinged:  # the API pings right after its first block starts
            self._pinged = True
            events.append(_PING)
        return events

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [_block_stop(self._index)]


# -- whole messages <-> events --------------------------------------------------------------


def _block_events(index: int, block: Mapping[str, Any]) -> list[Event]:
    kind = block.get("type")
    deltas: list[dict[str, Any]]
    if kind == "text":
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": block.get("text", "")}]
    elif kind == "tool_use":
        start = {**block, "input": {}}
        # Spelled as a JSON answer's ``input`` reads as arguments (wire.anthropic_messages),
        # so a call replayed as a stream is the call a JSON answer gives.
        arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": arguments}]
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:  # redacted thinking, server tool results...: whole in their start event
        start, deltas = dict(block), []
    events = [_block_start(index, start)]
    events += [_block_delta(index, d) for d in deltas]
    events.append(_block_stop(index))
    return events


def message_events(message: Mapping[str, Any]) -> list[Event]:
    """The stream events that carry ``message``, in the order the API sends them."""
    usage = dict(message.get("usage") or {})
    head = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 0},
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": head})]
    for index, block in enumerate(message.get("content") or ()):
        events += _block_events(index, block)
        if index == 0:
            events.append(_PING)
    if not message.get("content"):
        events.append(_PING)
    delta = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(_STOP)
    return events


def _apply_delta(block: dict[str, Any], delta: Mapping[str, Any], buffers: dict[int, str]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + str(delta.get("text", ""))
    elif kind == "input_json_delta":
        key = id(block)
        buffers[key] = buffers.get(key, "") + str(delta.get("partial_json", ""))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))


def assemble_message(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``message`` object a stream's event data amount to (what the JSON answer says)."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    buffers: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = copy.deepcopy(dict(event.get("message") or {}))
        elif kind == "content_block_start":
            blocks[int(event.get("index", len(blocks)))] = copy.deepcopy(
                dict(event.get("content_block") or {})
            )
        elif kind == "content_block_delta":
            block = blocks.get(event.get("index"))  # type: ignore[arg-type]
            if block is not None:
                _apply_delta(block, event.get("delta") or {}, buffers)
        elif kind == "content_block_stop":
            block = blocks.get(event.get("index"))  # type: ignore[arg-type]
            if block is not None and id(block) in buffers:
                text = buffers.pop(id(block))
                try:
                    block["input"] = json.loads(text) if text.strip() else {}
                except ValueError:
                    block["input"] = {}
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            message.update({k: v for k, v in delta.items()})
            usage = event.get("usage")
            if isinstance(usage, Mapping):
                merged = dict(message.get("usage") or {})
                merged.update({k: v for k, v in usage.items() if v is not None})
                message["usage"] = merged
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message
