"""The OpenAI chat-completions wire format, outbound: responses, stream chunks, SSE lines.

Pure functions from ``LLMResponse`` / ``Chunk`` to OpenAI's JSON objects and to SSE bytes.
JSON is written ASCII-only, so any text (even a lone surrogate) encodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vex_llm.models import Chunk, LLMResponse

__all__ = ["DONE_LINE", "chunk_json", "completion_json", "sse_line", "usage_chunk_json"]

#: The line that ends an OpenAI stream.
DONE_LINE = b"data: [DONE]\n\n"


def _usage(response_usage: Any) -> dict[str, int]:
    return {
        "prompt_tokens": response_usage.prompt_tokens,
        "completion_tokens": response_usage.completion_tokens,
        "total_tokens": response_usage.total_tokens,
    }


def completion_json(
    response: LLMResponse, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for ``response``."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.content},
                "logprobs": None,
                "finish_reason": response.finish_reason or "stop",
            }
        ],
        "usage": _usage(response.usage),
    }


def chunk_json(
    chunk: Chunk, *, completion_id: str, created: int, model: str, first: bool = False
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` for ``chunk``; ``first`` adds the assistant role."""
    delta: dict[str, Any] = {}
    if first:
        delta["role"] = "assistant"
    if chunk.delta or first:
        delta["content"] = chunk.delta
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": chunk.finish_reason}
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
