"""``POST /v1/responses``: OpenAI's Responses API door (the Agents SDK and newer apps use it).

The body travels whole (:mod:`vex_llm.server.doors.openai_body`): ``input`` as a string or
items, ``instructions``, ``tools``, ``text.format``, ``reasoning``... Only OpenAI-compatible
upstreams answer it; another upstream's model is a 400 naming it. Answers are the upstream's
own ``response`` object, or its typed events (``event: response.created`` ...
``response.completed``), on a miss and on a hit.

A request that depends on state the upstream keeps (``previous_response_id``,
``conversation``, an ``item_reference`` input item) or that runs in the ``background`` goes
upstream uncached: its answer is
neither looked up nor stored (``x-vex-cache: bypass``). ``store`` does not change the answer
and is not keyed.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from vex_llm.models import OPENAI_RESPONSES, CacheControl, Chunk, LLMResponse
from vex_llm.server.doors import DoorRequest, Rendered, json_bytes, openai_error
from vex_llm.server.doors.openai_body import (
    check_shapes,
    integer,
    is_bool,
    is_object,
    is_str,
    json_type,
    number,
    operation_request,
    read_object,
    utf8,
)
from vex_llm.server.wire import WireError
from vex_llm.wire.openai_responses import stateful_field

__all__ = ["ResponsesDoor"]


def _tool_choice(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("type"), str))


def _tools(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(t, dict) and isinstance(t.get("type"), str) for t in v
    )


def _conversation(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("id"), str))


_SHAPES = {
    "instructions": (is_str, "a string"),
    "tools": (_tools, "an array of tools, each an object with a string 'type'"),
    "tool_choice": (_tool_choice, "a string or an object with a 'type'"),
    "parallel_tool_calls": (is_bool, "a boolean"),
    "text": (is_object, "an object"),
    "reasoning": (is_object, "an object"),
    "max_output_tokens": (integer(1, 2**63), "an integer of at least 1"),
    "max_tool_calls": (integer(1, 2**63), "an integer of at least 1"),
    "temperature": (number(0, 2), "a number between 0 and 2"),
    "top_p": (number(0, 1), "a number between 0 and 1"),
    "top_logprobs": (integer(0, 20), "an integer between 0 and 20"),
    "include": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "an array of strings",
    ),
    "metadata": (is_object, "an object"),
    "previous_response_id": (is_str, "a string"),
    "conversation": (_conversation, "a string or an object with an 'id'"),
    "background": (is_bool, "a boolean"),
    "store": (is_bool, "a boolean"),
    "stream": (is_bool, "a boolean"),
    "stream_options": (is_object, "an object"),
    "truncation": (is_str, "a string"),
    "user": (is_str, "a string"),
    "service_tier": (is_str, "a string"),
}


def _check_input(doc: Mapping[str, Any]) -> None:
    text = doc.get("text")
    if isinstance(text, dict) and text.get("format") is not None:
        fmt = text["format"]
        if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
            raise WireError("'text.format' must be an object with a 'type'", param="text.format")
    value = doc.get("input")
    if value is None:
        if doc.get("prompt") is None and doc.get("conversation") is None:
            raise WireError("'input' is required", param="input")
        return
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise WireError(
            f"'input' must be a string or an array of items, not {json_type(value)}",
            param="input",
        )
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise WireError(
                f"an input item must be an object, not {json_type(item)}", param=f"input[{i}]"
            )


class ResponsesDoor:
    """The Responses API wire format (see the module docstring)."""

    endpoint = "responses"

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> DoorRequest:
        """A Responses body as a :class:`DoorRequest`; a stateful one bypasses the cache."""
        doc, model = read_object(body)
        check_shapes(doc, _SHAPES)
        _check_input(doc)
        if stateful_field(doc) is not None:
            # Never looked up (unless only-if-cached, which then misses) and never stored.
            control = dataclasses.replace(
                control, no_store=True, no_cache=not control.only_if_cached
            )
        request = operation_request(
            doc,
            model,
            OPENAI_RESPONSES,
            tenant=tenant,
            control=control,
            upstream_model=upstream_model,
        )
        return DoorRequest(request, model, bool(doc.get("stream")))

    def error(self, err: WireError) -> Rendered:
        """OpenAI's ``{"error": {...}}``."""
        return openai_error(err)

    def answer(self, response: LLMResponse, call: DoorRequest) -> Rendered:
        """The upstream's own ``response`` object (miss or hit)."""
        if response.raw is not None and response.raw_format == OPENAI_RESPONSES:
            return Rendered(utf8(response.raw.text))
        text = {"type": "output_text", "text": response.content, "annotations": []}
        body = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": response.model or call.model,
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [text],
                }
            ],
            "usage": {
                "input_tokens": response.usage.prompt_tokens,
                "output_tokens": response.usage.completion_tokens,
                "total_tokens": response.usage.total_tokens,
            },
        }
        return Rendered(json_bytes(body))

    async def stream(
        self, chunks: AsyncIterator[Chunk], call: DoorRequest
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's own events, each with its event name (the stream ends with its
        terminal event: the Responses API sends no ``[DONE]``)."""
        async for chunk in chunks:
            if chunk.raw is None or chunk.raw_format != OPENAI_RESPONSES:
                continue
            head = b"" if chunk.raw_event is None else b"event: " + utf8(chunk.raw_event) + b"\n"
            yield head + b"data: " + utf8(chunk.raw) + b"\n\n"

    def stream_error(self, err: WireError) -> bytes:
        """An ``error`` event as the Responses API sends one."""
        event = {
            "type": "error",
            "code": err.code or err.type,
            "message": err.message,
            "param": err.param,
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + json_bytes(event) + b"\n\n"
