"""``POST /v1/chat/completions``: OpenAI's Chat Completions door.

Reading is :func:`vex_llm.server.wire.parse_chat_request`; writing relays the upstream's own
answer and events when it speaks this format (``raw``), and writes OpenAI's shapes from the
typed fields otherwise (an Anthropic or Ollama upstream): :mod:`vex_llm.server.encode`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from vex_llm.models import CacheControl, Chunk, LLMResponse
from vex_llm.server.doors import DoorRequest, Rendered, json_bytes, openai_error
from vex_llm.server.encode import (
    DONE_LINE,
    chunk_json,
    completion_json,
    is_usage_only,
    raw_body,
    raw_event,
    sse_line,
    usage_chunk_json,
)
from vex_llm.server.wire import WireError, parse_chat_request

__all__ = ["ChatDoor"]


def _says_nothing(chunk: Chunk) -> bool:
    """True for a chunk with nothing an OpenAI chunk could carry."""
    return (
        not chunk.delta
        and not chunk.tool_calls
        and chunk.refusal is None
        and chunk.logprobs is None
        and chunk.usage is None
    )


class ChatDoor:
    """The Chat Completions wire format (see the module docstring)."""

    endpoint = "chat.completions"

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> DoorRequest:
        """A chat-completions body as a :class:`DoorRequest`."""
        chat = parse_chat_request(
            body, tenant_id=tenant, control=control, upstream_model=upstream_model
        )
        return DoorRequest(
            chat.request, chat.model, chat.stream, {"include_usage": chat.include_usage}
        )

    def error(self, err: WireError) -> Rendered:
        """OpenAI's ``{"error": {...}}``."""
        return openai_error(err)

    def answer(self, response: LLMResponse, call: DoorRequest) -> Rendered:
        """The upstream's own ``chat.completion`` (id and created included, miss or hit), or
        one written from the typed fields."""
        raw = raw_body(response)
        if raw is not None:
            return Rendered(raw)
        completion_id, created = _new_completion()
        body = completion_json(
            response,
            completion_id=completion_id,
            created=created,
            model=response.model or call.model,
        )
        return Rendered(json_bytes(body))

    async def stream(
        self, chunks: AsyncIterator[Chunk], call: DoorRequest
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's own events, or chunks written from the typed fields; then
        ``[DONE]``. The usage chunk goes only to a client that asked for it."""
        include_usage = bool(call.options.get("include_usage"))
        # Made when the first chunk without the upstream's own event needs them: a relayed
        # stream carries the upstream's id (a uuid4 is a system call and an object).
        completion_id = ""
        created = 0
        first = True
        final = None
        relayed = False  # the upstream's own events are relayed: it sent its usage too
        async for chunk in chunks:
            if chunk.is_final:
                final = chunk
                if relayed:
                    continue  # the upstream's own events said it all; [DONE] follows
            raw = raw_event(chunk)
            if raw is not None:
                relayed = True
                if include_usage or not is_usage_only(chunk):
                    yield raw
                continue
            if not first and not chunk.is_final and _says_nothing(chunk):
                continue  # another format's bookkeeping event (ping, block start/stop)
            if not completion_id:
                completion_id, created = _new_completion()
            yield sse_line(
                chunk_json(
                    chunk,
                    completion_id=completion_id,
                    created=created,
                    model=chunk.model or call.model,
                    first=first,
                )
            )
            first = False
        if include_usage and final is not None and not relayed:
            if not completion_id:
                completion_id, created = _new_completion()
            yield sse_line(
                usage_chunk_json(
                    final,
                    completion_id=completion_id,
                    created=created,
                    model=final.model or call.model,
                )
            )
        yield DONE_LINE

    def stream_error(self, err: WireError) -> bytes:
        """An SSE event carrying OpenAI's error object (no ``[DONE]`` follows)."""
        return sse_line(err.body())


def _new_completion() -> tuple[str, int]:
    """A fresh completion id and creation time, for an answer written from typed fields."""
    return f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
