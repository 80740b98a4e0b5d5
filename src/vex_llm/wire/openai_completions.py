"""OpenAI's legacy Completions API (``POST /completions``), both ways, as pure functions.

The request is the client's body as it came (``LLMRequest.extra`` of an
:data:`~vex_llm.models.OPENAI_COMPLETIONS` request, see :func:`operation_payload`); answers
keep the upstream's JSON as ``raw``:

- :func:`parse_text_completion`: a ``text_completion`` object as an :class:`LLMResponse`
  (text, finish reason, usage and log-probabilities of the first choice typed).
- :class:`CompletionsStreamDecoder`: the ``text_completion`` chunks of a stream as
  :class:`Chunk`\\ s, one per event, each keeping its event as ``raw``; a terminal chunk
  (no ``raw``) at ``[DONE]``.
- :func:`assemble_text_completion` / :func:`text_completion_chunks`: a recorded stream as
  the ``text_completion`` it amounts to, and one as the chunks that would have streamed it
  (a JSON hit from a stored stream, a stream hit from a stored JSON answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vex_llm.chat import Choice, ToolCallDelta
from vex_llm.errors import InvalidResponse
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import OPENAI_COMPLETIONS, LLMRequest, LLMResponse
from vex_llm.wire.openai_chat import OpenAIEventDecoder, parse_choices

__all__ = [
    "CompletionsStreamDecoder",
    "assemble_text_completion",
    "operation_payload",
    "parse_text_completion",
    "text_completion_chunks",
]


def operation_payload(
    request: LLMRequest, model: str, *, stream: bool, stream_usage: bool = False
) -> dict[str, Any]:
    """The body of an ``operation`` request: its ``extra`` as it came, the model set, and
    ``stream`` when streamed. ``stream_usage`` adds ``stream_options.include_usage`` (a
    completions stream carries usage only when asked; the proxy always asks, to count
    tokens, and passes the usage chunk on only to clients that asked)."""
    payload: dict[str, Any] = {"model": model}
    if request.extra is not None:
        payload.update(request.extra.value)
        payload["model"] = model
    if stream:
        payload["stream"] = True
        if stream_usage:
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, Mapping) else {}),
                "include_usage": True,
            }
    return payload


def _choice(doc: object, position: int) -> Choice:
    if not isinstance(doc, dict):
        raise InvalidResponse(f"text completion choices[{position}] is not an object")
    text = doc.get("text")
    if not isinstance(text, str):
        raise InvalidResponse(f"text completion choices[{position}] has no 'text' string")
    index, finish, logprobs = (
        doc.get("index", position),
        doc.get("finish_reason"),
        doc.get("logprobs"),
    )
    return Choice(
        index=index if isinstance(index, int) else position,
        content=text,
        finish_reason=finish if isinstance(finish, str) else "stop",
        logprobs=None if logprobs is None else FrozenJSON.of(logprobs, "logprobs"),
    )


def parse_text_completion(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a ``text_completion`` object; ``raw`` is the object."""
    return parse_choices(doc, fallback_model, "text completion", _choice, OPENAI_COMPLETIONS)


class CompletionsStreamDecoder(OpenAIEventDecoder):
    """The ``data:`` payloads of a completions stream as ``Chunk``\\ s: each event's first
    choice's text (see the base for the rest)."""

    raw_format = OPENAI_COMPLETIONS

    def _fields(self, choice: dict[str, Any]) -> tuple[str, tuple[ToolCallDelta, ...], str | None]:
        text = choice.get("text", "")
        if not isinstance(text, str):
            raise InvalidResponse("stream chunk choice needs 'text' as a string")
        return text, (), None


_HEAD = ("id", "object", "created", "model", "system_fingerprint")


def _join_logprobs(into: dict[str, Any], piece: Mapping[str, Any]) -> None:
    # Completions log-probabilities are parallel lists (tokens, token_logprobs, top_logprobs,
    # text_offset): a stream's pieces extend them.
    for name, value in piece.items():
        current = into.get(name)
        if isinstance(value, list) and isinstance(current, list):
            into[name] = current + value
        else:
            into[name] = value


def assemble_text_completion(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``text_completion`` a stream of its chunks amounts to: each choice's text and
    log-probabilities joined, its last finish reason; the head from the first chunk that
    has it, usage from the last that has it."""
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
                index, {"text": "", "index": index, "logprobs": None, "finish_reason": None}
            )
            state["text"] += choice.get("text") or ""
            if choice.get("logprobs") is not None:
                if state["logprobs"] is None:
                    state["logprobs"] = {}
                _join_logprobs(state["logprobs"], choice["logprobs"])
            if choice.get("finish_reason") is not None:
                state["finish_reason"] = choice["finish_reason"]
    doc = {
        "id": head.get("id"),
        "object": "text_completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [choices[i] for i in sorted(choices)],
        "usage": usage,
    }
    if "system_fingerprint" in head:
        doc["system_fingerprint"] = head["system_fingerprint"]
    return doc


def text_completion_chunks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chunks that stream ``doc`` (a ``text_completion``): one per choice with its whole
    text, log-probabilities and finish reason, then the usage with no choices."""
    head = {name: doc[name] for name in _HEAD if name in doc}
    head["object"] = "text_completion"
    chunks = [{**head, "choices": [dict(choice)]} for choice in doc.get("choices") or ()]
    if doc.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": doc["usage"]})
    return chunks
