"""Anthropic's Messages API stream, decoded (pure): every event as one :class:`Chunk`.

Each chunk keeps its event's data (``raw``) and SSE name (``raw_event``), so a relay can hand
the stream on exactly as it came; typed fields say what matters to a caller: text deltas, and
tool calls in OpenAI's shape (the call's ordinal as ``index``, its id and name when its
``tool_use`` block starts, ``input_json_delta`` pieces as argument text). One terminal chunk
(no ``raw``) follows ``message_stop`` with the finish reason and usage.
"""

from __future__ import annotations

import json
from typing import Any

from vex_llm.chat import ToolCallDelta
from vex_llm.errors import InvalidResponse
from vex_llm.models import Chunk, Usage
from vex_llm.wire.anthropic_messages import (
    ANTHROPIC_MESSAGES,
    finish_reason,
    int_field,
    stream_error,
)

__all__ = ["AnthropicStreamDecoder"]


class AnthropicStreamDecoder:
    """Turns Messages API stream events into ``Chunk``\\ s, one per event.

    Each chunk keeps its event's data as ``raw`` and its name as ``raw_event``; text deltas
    fill ``delta``, a ``tool_use`` block's start and ``input_json_delta`` pieces fill
    ``tool_calls`` (indexed by the call's ordinal among the answer's calls, as OpenAI does,
    not by the block's position). After ``message_stop`` comes one terminal chunk (no
    ``raw``) with the finish reason and usage. :meth:`finish` raises ``InvalidResponse`` if
    ``message_stop`` never came.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._input_tokens = 0
        self._output_tokens = 0
        self._stop_reason: object = None
        self._started = False
        #: block index -> [call ordinal, whether any argument text arrived]
        self._calls: dict[int, list[Any]] = {}

    def feed(self, event: str, data: str) -> list[Chunk]:
        """The chunks carried by one event (``event`` name and its ``data``)."""
        if self.done:
            raise InvalidResponse("Anthropic stream continued after message_stop")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidResponse(f"Anthropic stream event is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise InvalidResponse("Anthropic stream event is not a JSON object")
        kind = doc.get("type", event)
        if kind == "error":
            raise stream_error(doc)
        if kind == "message_start":
            message = doc.get("message")
            if not isinstance(message, dict):
                raise InvalidResponse("message_start has no 'message'")
            self._started = True
            if isinstance(message.get("model"), str) and message["model"]:
                self.model = message["model"]
            self._take_usage(message.get("usage"))
        elif kind != "ping" and not self._started:
            raise InvalidResponse(f"Anthropic stream sent {kind!r} before message_start")
        text = ""
        calls: tuple[ToolCallDelta, ...] = ()
        if kind == "content_block_start":
            calls = self._block_start(doc)
        elif kind == "content_block_delta":
            text, calls = self._block_delta(doc)
        elif kind == "content_block_stop":
            calls = self._block_stop(doc)
        elif kind == "message_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict) and "stop_reason" in delta:
                self._stop_reason = delta["stop_reason"]
            self._take_usage(doc.get("usage"))
        chunk = Chunk(
            delta=text,
            model=self.model,
            tool_calls=calls,
            raw=data,
            raw_format=ANTHROPIC_MESSAGES,
            raw_event=event,
        )
        if kind != "message_stop":
            return [chunk]
        self.done = True
        usage = Usage(self._input_tokens, self._output_tokens)
        reason = finish_reason(self._stop_reason)
        return [chunk, Chunk(finish_reason=reason, usage=usage, model=self.model)]

    def _block_start(self, doc: dict[str, Any]) -> tuple[ToolCallDelta, ...]:
        block = doc.get("content_block")
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return ()
        index = doc.get("index")
        call_id, name = block.get("id"), block.get("name")
        if not isinstance(index, int) or not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidResponse("tool_use block start needs an integer index, an id, a name")
        ordinal = len(self._calls)
        self._calls[index] = [ordinal, False]
        return (ToolCallDelta(index=ordinal, id=call_id, name=name, type="function"),)

    def _block_delta(self, doc: dict[str, Any]) -> tuple[str, tuple[ToolCallDelta, ...]]:
        delta = doc.get("delta")
        if not isinstance(delta, dict):
            raise InvalidResponse("content_block_delta has no 'delta'")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise InvalidResponse("text_delta has no string 'text'")
            return text, ()
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            call = self._calls.get(doc.get("index"))  # type: ignore[arg-type]
            if not isinstance(piece, str) or call is None:
                raise InvalidResponse("input_json_delta needs 'partial_json' in a tool_use block")
            if not piece:
                return "", ()
            call[1] = True
            return "", (ToolCallDelta(index=call[0], arguments=piece),)
        return "", ()  # thinking, signatures, citations: kept in raw only

    def _block_stop(self, doc: dict[str, Any]) -> tuple[ToolCallDelta, ...]:
        call = self._calls.get(doc.get("index"))  # type: ignore[arg-type]
        if call is None or call[1]:
            return ()
        # A call without arguments streams no input text; its input is the empty object
        # (what the JSON answer says), not "", which no client could parse.
        return (ToolCallDelta(index=call[0], arguments="{}"),)

    def _take_usage(self, usage: object) -> None:
        if usage is None:
            return
        if not isinstance(usage, dict):
            raise InvalidResponse("Anthropic 'usage' must be an object")
        if "input_tokens" in usage and usage["input_tokens"] is not None:
            self._input_tokens = int_field(usage["input_tokens"], "input_tokens")
        if "output_tokens" in usage and usage["output_tokens"] is not None:
            # Cumulative: message_delta's count replaces message_start's placeholder.
            self._output_tokens = int_field(usage["output_tokens"], "output_tokens")

    def finish(self) -> None:
        """Check the stream ended with ``message_stop`` (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("Anthropic stream ended without 'message_stop'")
