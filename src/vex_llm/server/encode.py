"""The OpenAI chat-completions wire format, outbound: responses, stream chunks, SSE lines.

An answer that came from an OpenAI-compatible upstream is relayed as the upstream sent it
(``raw``: :func:`raw_body`, :func:`raw_event`), on a miss and on a hit alike. An answer from
another kind of upstream (Anthropic, Ollama) is written from its typed fields by
:func:`completion_json` / :func:`chunk_json`. JSON is written ASCII-only, so any text (even a
lone surrogate) encodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vex_llm.chat import Choice, ToolCall
from vex_llm.models import OPENAI_CHAT, Chunk, LLMResponse

__all__ = [
    "DONE_LINE",
    "chunk_json",
    "completion_json",
    "is_usage_only",
    "raw_body",
    "raw_event",
    "sse_line",
    "usage_chunk_json",
]

#: The line that ends an OpenAI stream.
DONE_LINE = b"data: [DONE]\n\n"


def _usage(response_usage: Any) -> dict[str, int]:
    return {
        "prompt_tokens": response_usage.prompt_tokens,
        "completion_tokens": response_usage.completion_tokens,
        "total_tokens": response_usage.total_tokens,
    }


def _message(content: str, calls: tuple[ToolCall, ...], refusal: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if calls and not content else content,
    }
    if calls:
        message["tool_calls"] = [c.to_openai() for c in calls]
    if refusal is not None:
        message["refusal"] = refusal
    return message


def _choice(choice: Choice) -> dict[str, Any]:
    return {
        "index": choice.index,
        "message": _message(choice.content, choice.tool_calls, choice.refusal),
        "logprobs": None if choice.logprobs is None else choice.logprobs.value,
        "finish_reason": choice.finish_reason or "stop",
    }


def completion_json(
    response: LLMResponse, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object written from ``response``'s typed fields."""
    choices = response.choices or (
        Choice(
            0,
            response.content,
            response.finish_reason,
            response.tool_calls,
            response.refusal,
            response.logprobs,
        ),
    )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [_choice(c) for c in choices],
        "usage": _usage(response.usage),
    }


def raw_body(response: LLMResponse) -> bytes | None:
    """The upstream's own ``chat.completion`` for ``response``, or None if it has none."""
    if response.raw is None or response.raw_format != OPENAI_CHAT:
        return None
    return _utf8(response.raw.text)


def raw_event(chunk: Chunk) -> bytes | None:
    """The SSE line relaying the upstream's own event for ``chunk``, or None if it has none."""
    if chunk.raw is None or chunk.raw_format != OPENAI_CHAT:
        return None
    return b"data: " + _utf8(chunk.raw) + b"\n\n"


def is_usage_only(chunk: Chunk) -> bool:
    """True for the upstream's trailing usage event (no choices): sent only when asked for."""
    if chunk.usage is None or chunk.raw is None:
        return False
    doc = json.loads(chunk.raw)
    return isinstance(doc, dict) and doc.get("choices") == []


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate the upstream escaped: escape it again
        return json.dumps(json.loads(text), separators=(",", ":")).encode("ascii")


def chunk_json(
    chunk: Chunk, *, completion_id: str, created: int, model: str, first: bool = False
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` for ``chunk``; ``first`` adds the assistant role."""
    delta: dict[str, Any] = {}
    if first:
        delta["role"] = "assistant"
    if chunk.delta or first:
        delta["content"] = chunk.delta
    if chunk.tool_calls:
        delta["tool_calls"] = [
            {
                "index": d.index,
                **({"id": d.id, "type": d.type or "function"} if d.id is not None else {}),
                "function": {
                    **({"name": d.name} if d.name is not None else {}),
                    "arguments": d.arguments,
                },
            }
            for d in chunk.tool_calls
        ]
    if chunk.refusal is not None:
        delta["refusal"] = chunk.refusal
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": chunk.index,
                "delta": delta,
                "logprobs": None if chunk.logprobs is None else chunk.logprobs.value,
                "finish_reason": chunk.finish_reason,
            }
        ],
    }


def usage_chunk_json(
    chunk: Chunk, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """The trailing chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
    usage = chunk.usage
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": _usage(usage) if usage is not None else None,
    }


def sse_line(obj: Mapping[str, Any]) -> bytes:
    """One SSE event carrying ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n"
