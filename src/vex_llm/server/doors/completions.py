"""``POST /v1/completions``: OpenAI's legacy Completions door (code-completion tools use it).

The body travels whole (:mod:`vex_llm.server.doors.openai_body`): ``prompt`` as a string, an
array of strings or of token arrays, ``suffix``, ``echo``, ``logprobs``, ``stop``, ``n``,
``best_of``... Only OpenAI-compatible upstreams answer it (llama.cpp's ``llama-server``
does); another upstream's model is a 400 naming it. Answers are the upstream's own
``text_completion`` object, or its chunks then ``[DONE]``, on a miss and on a hit; the usage
chunk (the proxy asks for it, to count tokens) reaches only clients that asked for it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from vex_llm.models import OPENAI_COMPLETIONS, CacheControl, Chunk, LLMResponse
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
    stop,
    utf8,
)
from vex_llm.server.wire import WireError

__all__ = ["CompletionsDoor"]

_DONE = b"data: [DONE]\n\n"
_INT64 = 2**63

_SHAPES = {
    "suffix": (is_str, "a string"),
    "echo": (is_bool, "a boolean"),
    "logprobs": (integer(0, 5), "an integer between 0 and 5"),
    "stop": (stop, "a string or an array of 1 to 4 strings"),
    "n": (integer(1, 128), "an integer between 1 and 128"),
    "best_of": (integer(1, 20), "an integer between 1 and 20"),
    "max_tokens": (integer(0, _INT64), "a non-negative integer"),
    "temperature": (number(0, 2), "a number between 0 and 2"),
    "top_p": (number(0, 1), "a number between 0 and 1"),
    "presence_penalty": (number(-2, 2), "a number between -2 and 2"),
    "frequency_penalty": (number(-2, 2), "a number between -2 and 2"),
    "seed": (integer(-_INT64, _INT64 - 1), "a 64-bit integer"),
    "logit_bias": (is_object, "an object"),
    "user": (is_str, "a string"),
    "stream": (is_bool, "a boolean"),
    "stream_options": (is_object, "an object"),
}


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def _check_prompt(value: Any) -> None:
    if value is None:
        raise WireError("'prompt' is required", param="prompt")
    if isinstance(value, str) or _is_tokens(value):
        return
    if (
        isinstance(value, list)
        and value
        and (all(isinstance(p, str) for p in value) or all(_is_tokens(p) for p in value))
    ):
        return
    raise WireError(
        "'prompt' must be a string, an array of strings, an array of tokens or an array of "
        f"token arrays, not {json_type(value)}",
        param="prompt",
    )


def _is_usage_only(chunk: Chunk) -> bool:
    if chunk.usage is None or chunk.raw is None:
        return False
    doc = json.loads(chunk.raw)
    return isinstance(doc, dict) and doc.get("choices") == []


class CompletionsDoor:
    """The legacy Completions wire format (see the module docstring)."""

    endpoint = "completions"

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> DoorRequest:
        """A completions body as a :class:`DoorRequest`."""
        doc, model = read_object(body)
        _check_prompt(doc.get("prompt"))
        check_shapes(doc, _SHAPES)
        options = doc.get("stream_options") or {}
        request = operation_request(
            doc,
            model,
            OPENAI_COMPLETIONS,
            tenant=tenant,
            control=control,
            upstream_model=upstream_model,
        )
        return DoorRequest(
            request,
            model,
            bool(doc.get("stream")),
            {"include_usage": options.get("include_usage") is True},
        )

    def error(self, err: WireError) -> Rendered:
        """OpenAI's ``{"error": {...}}``."""
        return openai_error(err)

    def answer(self, response: LLMResponse, call: DoorRequest) -> Rendered:
        """The upstream's own ``text_completion`` (miss or hit)."""
        if response.raw is not None and response.raw_format == OPENAI_COMPLETIONS:
            return Rendered(utf8(response.raw.text))
        body = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": response.model or call.model,
            "choices": [
                {
                    "text": response.content,
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": response.finish_reason or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": response.usage.prompt_tokens,
                "completion_tokens": response.usage.completion_tokens,
                "total_tokens": response.usage.total_tokens,
            },
        }
        return Rendered(json_bytes(body))

    async def stream(
        self, chunks: AsyncIterator[Chunk], call: DoorRequest
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's own chunks, then ``[DONE]``."""
        include_usage = bool(call.options.get("include_usage"))
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        async for chunk in chunks:
            if chunk.is_final:
                continue
            if chunk.raw is not None and chunk.raw_format == OPENAI_COMPLETIONS:
                if include_usage or not _is_usage_only(chunk):
                    yield b"data: " + utf8(chunk.raw) + b"\n\n"
            elif chunk.delta:  # an event the scrubbing rewrote: its text, in this format
                choice = {"text": chunk.delta, "index": chunk.index, "logprobs": None}
                body = {
                    "id": completion_id,
                    "object": "text_completion",
                    "created": created,
                    "model": chunk.model or call.model,
                    "choices": [{**choice, "finish_reason": None}],
                }
                yield b"data: " + json_bytes(body) + b"\n\n"
        yield _DONE

    def stream_error(self, err: WireError) -> bytes:
        """An SSE event carrying OpenAI's error object (no ``[DONE]`` follows)."""
        return b"data: " + json_bytes(err.body()) + b"\n\n"
