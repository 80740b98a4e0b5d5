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

import json
from collections.abc import Iterable, Mapping
from typing import Any

from vex_llm.chat import Choice
from vex_llm.errors import InvalidResponse
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import OPENAI_COMPLETIONS, Chunk, LLMRequest, LLMResponse, Usage

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


def _error_text(doc: Mapping[str, Any]) -> str:
    error = doc.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens", 0), value.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise InvalidResponse("usage token counts must be integers")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


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
    if "error" in doc:
        raise InvalidResponse(f"backend answered an error object: {_error_text(doc)}")
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidResponse("text completion has no 'choices'")
    parsed = tuple(_choice(c, i) for i, c in enumerate(choices))
    first, model = parsed[0], doc.get("model")
    try:
        raw = FrozenJSON.of(doc, "text completion")
    except (TypeError, ValueError) as exc:
        raise InvalidResponse(f"text completion is not plain JSON: {exc}") from None
    return LLMResponse(
        content=first.content,
        model=model if isinstance(model, str) and model else fallback_model,
        usage=_usage(doc.get("usage")) or Usage(),
        finish_reason=first.finish_reason,
        logprobs=first.logprobs,
        choices=parsed if len(parsed) > 1 else (),
        raw=raw,
        raw_format=OPENAI_COMPLETIONS,
    )


class CompletionsStreamDecoder:
    """The ``data:`` payloads of a completions stream as ``Chunk``\\ s (one per event, the
    event kept as ``raw``; typed: the text, index and log-probabilities of its choice, or the
    usage of a usage-only event); ``[DONE]`` gives the terminal chunk with the first choice's
    finish reason and the usage. :meth:`finish` raises ``InvalidResponse`` if ``[DONE]``
    never came."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, data: str) -> list[Chunk]:
        """The chunks carried by one event's data."""
        if self.done:
            raise InvalidResponse("stream continued after [DONE]")
        if data.strip() == "[DONE]":
            self.done = True
            return [
                Chunk(finish_reason=self._finish or "stop", usage=self._usage, model=self.model)
            ]
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidResponse(f"stream event is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise InvalidResponse("stream event is not a JSON object")
        if "error" in doc:
            raise InvalidResponse(f"backend reported an error mid-stream: {_error_text(doc)}")
        if isinstance(doc.get("model"), str) and doc["model"]:
            self.model = doc["model"]
        usage = _usage(doc.get("usage"))
        if usage is not None:
            self._usage = usage
        choices = doc.get("choices")
        if not isinstance(choices, list):
            raise InvalidResponse("stream chunk has no 'choices' list")
        if not choices:
            return [Chunk(usage=usage, model=self.model, raw=data, raw_format=OPENAI_COMPLETIONS)]
        choice = choices[0]
        if not isinstance(choice, dict):
            raise InvalidResponse("stream chunk choice is not an object")
        text, index = choice.get("text", ""), choice.get("index", 0)
        if not isinstance(text, str) or not isinstance(index, int):
            raise InvalidResponse("stream chunk choice needs 'text' and an integer 'index'")
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and (index == 0 or self._finish is None):
            self._finish = finish
        logprobs = choice.get("logprobs")
        return [
            Chunk(
                delta=text,
                model=self.model,
                index=index,
                logprobs=None if logprobs is None else FrozenJSON.of(logprobs, "logprobs"),
                raw=data,
                raw_format=OPENAI_COMPLETIONS,
            )
        ]

    def finish(self) -> None:
        """Check the stream ended properly (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("stream ended without its terminal 'data: [DONE]'")


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
