"""A stream as one answer, and one answer as a stream: how either kind of entry serves both.

The cache stores an answer the way it came — a recorded stream, or a whole response — and a
later request may want the other kind. Pure functions, no I/O:

- :func:`assemble_response`: the ``LLMResponse`` a finished stream amounts to: text joined,
  tool calls assembled from their pieces, log-probabilities joined. When the stream came in
  OpenAI's format, the ``chat.completion`` it amounts to is rebuilt from the events as
  ``raw``, so a JSON hit from a stored stream still carries every field the upstream sent.
- :func:`response_chunks`: the chunks that stream a stored response: for an OpenAI answer,
  the ``chat.completion.chunk`` events that would have carried it (decoded by the same
  decoder a live stream goes through); otherwise typed chunks.

Anthropic's format gets the same two ways: its ``message`` rebuilt from the events, and the
events that would have carried a stored ``message``
(:mod:`vex_llm.wire.anthropic_answer`).

Answers of OpenAI's other APIs (``raw_format`` :data:`~vex_llm.models.OPENAI_COMPLETIONS`,
:data:`~vex_llm.models.OPENAI_RESPONSES`) follow the same two rules in their own format: a
completions stream joined into its ``text_completion`` and back; a Responses stream's answer
is the response its ``response.completed`` event carries, and a stored response streams as
the typed events that would have carried it (:mod:`vex_llm.wire.openai_completions`,
:mod:`vex_llm.wire.openai_responses`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from vex_llm.chat import ToolCall, ToolCallDelta
from vex_llm.errors import InvalidResponse
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import (
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_RESPONSES,
    Chunk,
    LLMResponse,
    Usage,
)
from vex_llm.wire.anthropic_answer import assemble_message, message_events
from vex_llm.wire.anthropic_messages import ANTHROPIC_MESSAGES, parse_message
from vex_llm.wire.anthropic_stream import AnthropicStreamDecoder
from vex_llm.wire.openai_chat import (
    OpenAIStreamDecoder,
    assemble_completion,
    completion_chunks,
    parse_completion,
)
from vex_llm.wire.openai_completions import (
    CompletionsStreamDecoder,
    assemble_text_completion,
    parse_text_completion,
    text_completion_chunks,
)
from vex_llm.wire.openai_responses import (
    ResponsesStreamDecoder,
    final_response,
    parse_response,
    response_events,
)

__all__ = ["assemble_response", "response_chunks", "typed_response"]


def typed_response(chunks: Sequence[Chunk], model: str, latency_ms: float) -> LLMResponse:
    """The answer a finished stream amounts to in typed fields only (text, tool calls,
    refusal, log-probabilities, usage, finish reason): no upstream object as ``raw``, so no
    event is parsed again."""
    final = chunks[-1]
    answered = next((c.model for c in reversed(chunks) if c.model), None)
    first = [c for c in chunks if c.index == 0]
    calls: dict[int, dict[str, Any]] = {}
    refusal: list[str] = []
    logprobs: list[Any] = []
    for chunk in first:
        for piece in chunk.tool_calls:
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or piece.id or ""
            if piece.name and piece.name != call["name"]:  # some servers repeat it whole
                call["name"] += piece.name
            call["arguments"] += piece.arguments
            call.setdefault("type", piece.type)
        if chunk.refusal is not None:
            refusal.append(chunk.refusal)
        if chunk.logprobs is not None:
            content = chunk.logprobs.value.get("content")
            if isinstance(content, list):
                logprobs.extend(content)
    usage = final.usage or next((c.usage for c in reversed(chunks) if c.usage), None)
    return LLMResponse(
        content="".join(c.delta for c in first),
        model=answered or model,
        usage=usage or Usage(),
        latency_ms=latency_ms,
        finish_reason=final.finish_reason,
        tool_calls=tuple(
            ToolCall(c["id"], c["name"], c["arguments"], c.get("type") or "function")
            for _, c in sorted(calls.items())
        ),
        refusal="".join(refusal) if refusal else None,
        logprobs=FrozenJSON.of({"content": logprobs}) if logprobs else None,
    )


def _anthropic_response(
    chunks: Sequence[Chunk], model: str, latency_ms: float
) -> LLMResponse | None:
    """The answer an Anthropic stream amounts to, its ``message`` rebuilt as ``raw``."""
    events = [c.raw for c in chunks if c.raw is not None and c.raw_format == ANTHROPIC_MESSAGES]
    if not events:
        return None
    try:
        response = parse_message(assemble_message(json.loads(e) for e in events), model)
    except InvalidResponse:
        return None  # an odd stream: the typed pieces still tell the answer
    return dataclasses.replace(
        response, latency_ms=latency_ms, finish_reason=chunks[-1].finish_reason
    )


def _other_format(chunks: Sequence[Chunk], model: str, latency_ms: float) -> LLMResponse | None:
    """The answer a stream of OpenAI completions or Responses events amounts to (None for
    another format, or a stream that does not say it whole)."""
    kind = next((c.raw_format for c in chunks if c.raw is not None), None)
    events = [json.loads(c.raw) for c in chunks if c.raw is not None and c.raw_format == kind]
    final = chunks[-1]
    try:
        if kind == OPENAI_COMPLETIONS:
            doc = assemble_text_completion(events)
            response = parse_text_completion(doc, model)
            if doc.get("usage") is None:
                response = dataclasses.replace(response, usage=final.usage or Usage())
        elif kind == OPENAI_RESPONSES:
            whole = final_response(events)
            if whole is None:
                return None
            response = parse_response(whole, model)
        else:
            return None
    except InvalidResponse:
        return None
    return dataclasses.replace(response, latency_ms=latency_ms)


def assemble_response(chunks: Sequence[Chunk], model: str, latency_ms: float) -> LLMResponse:
    """The whole answer a finished stream amounts to (what ``complete()`` would have returned)."""
    anthropic = _anthropic_response(chunks, model, latency_ms)
    if anthropic is not None:
        return anthropic
    events = [c.raw for c in chunks if c.raw is not None and c.raw_format == OPENAI_CHAT]
    if not events:
        other = _other_format(chunks, model, latency_ms)
        if other is not None:
            return other
    if events:
        # One parse of all the events (each is a JSON object already checked by the
        # decoder) instead of one json.loads call per event.
        doc = assemble_completion(json.loads("[" + ",".join(events) + "]"))
        try:
            response = parse_completion(doc, model)
        except InvalidResponse:
            pass  # an odd stream (say, no text at all): the typed pieces still tell the answer
        else:
            final = chunks[-1]
            usage = response.usage if doc.get("usage") is not None else final.usage or Usage()
            return LLMResponse(
                content=response.content,
                model=response.model,
                usage=usage,
                latency_ms=latency_ms,
                finish_reason=final.finish_reason or response.finish_reason,
                tool_calls=response.tool_calls,
                refusal=response.refusal,
                logprobs=response.logprobs,
                choices=response.choices,
                raw=response.raw,
                raw_format=OPENAI_CHAT,
            )
    return typed_response(chunks, model, latency_ms)


def _compact(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def response_chunks(response: LLMResponse) -> tuple[Chunk, ...]:
    """The chunks a stream hit replays for a response stored whole."""
    chunks: list[Chunk] = []
    if response.raw is not None and response.raw_format == OPENAI_CHAT:
        decoder = OpenAIStreamDecoder(response.model)
        for event in completion_chunks(response.raw.value):
            chunks += decoder.feed(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        chunks += decoder.feed("[DONE]")
        return tuple(chunks)
    if response.raw is not None and response.raw_format == ANTHROPIC_MESSAGES:
        events = AnthropicStreamDecoder(response.model)
        replay: list[Chunk] = []
        for name, doc in message_events(response.raw.value):
            replay += events.feed(name, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        return tuple(replay)
    if response.raw is not None and response.raw_format == OPENAI_COMPLETIONS:
        text_decoder = CompletionsStreamDecoder(response.model)
        for event in text_completion_chunks(response.raw.value):
            chunks += text_decoder.feed(_compact(event))
        chunks += text_decoder.feed("[DONE]")
        return tuple(chunks)
    if response.raw is not None and response.raw_format == OPENAI_RESPONSES:
        event_decoder = ResponsesStreamDecoder(response.model)
        for name, body in response_events(response.raw.value):
            chunks += event_decoder.feed(name, _compact(body))
        return tuple(chunks)
    r = response
    text = (Chunk(delta=r.content, model=r.model),) if r.content else ()
    calls = (
        (
            Chunk(
                model=r.model,
                tool_calls=tuple(
                    ToolCallDelta(i, call.id, call.name, call.arguments, call.type)
                    for i, call in enumerate(r.tool_calls)
                ),
            ),
        )
        if r.tool_calls
        else ()
    )
    final = Chunk(finish_reason=r.finish_reason or "stop", usage=r.usage, model=r.model)
    return (*text, *calls, final)
