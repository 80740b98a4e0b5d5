"""``AnthropicProvider``: Anthropic's Messages API (``POST /v1/messages``), with SSE streaming.

System and developer turns go to the top-level ``system`` field (the API has no system role);
``max_tokens`` is required by the API, so a request without one gets ``max_tokens_default``.
The API has no seed or penalties: a request that sets them is refused with a ``ValueError``
rather than answered as if they had been applied. Stop reasons are reported in OpenAI's
vocabulary (``end_turn`` -> ``stop``, ``max_tokens`` -> ``length``) so every provider's
``finish_reason`` means the same thing. The stream is a sequence of named events
(``message_start``, ``content_block_delta``, ``message_delta``, ``message_stop``); one that
ends without ``message_stop`` raises ``InvalidResponse``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from vex_llm.errors import InvalidResponse, LLMError, RateLimited, ServerError
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Usage
from vex_llm.providers._base import HTTPProvider
from vex_llm.providers._http import decoded_sse

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider", "AnthropicStreamDecoder"]

ANTHROPIC_VERSION = "2023-06-01"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: object) -> str:
    """Anthropic's ``stop_reason`` in OpenAI's vocabulary (unknown ones pass through)."""
    if not isinstance(stop_reason, str) or not stop_reason:
        return "stop"
    return _STOP_REASONS.get(stop_reason, stop_reason)


def build_anthropic_payload(
    request: LLMRequest, model: str, *, max_tokens_default: int, stream: bool
) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request``."""
    unsupported = [
        name
        for name in ("seed", "presence_penalty", "frequency_penalty")
        if getattr(request, name) is not None
    ]
    if unsupported:
        raise ValueError(f"the Anthropic Messages API has no {', '.join(unsupported)}; unset them")
    system: list[str] = []
    messages: list[dict[str, str]] = []
    for message in request.conversation():
        if message.role in ("system", "developer"):
            system.append(message.text)
        elif message.role in ("user", "assistant"):
            messages.append({"role": message.role, "content": message.text})
        else:
            raise ValueError(f"the Anthropic Messages API takes no {message.role!r} turns here")
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or max_tokens_default,
        "messages": messages,
    }
    if system:
        payload["system"] = "\n\n".join(system)
    if request.temperature is not None:
        # Anthropic's range is 0..1; a higher value is the API's to refuse (HTTP 400), not
        # ours to clamp silently.
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    if stream:
        payload["stream"] = True
    return payload


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidResponse(f"Anthropic {what} must be an integer")
    return value


def parse_message(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a Messages API ``message`` object (latency left at 0)."""
    if doc.get("type") == "error":
        raise stream_error(doc)
    content = doc.get("content")
    if not isinstance(content, list):
        raise InvalidResponse("Anthropic message has no 'content' list")
    texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidResponse("Anthropic message has no text content block")
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        raise InvalidResponse("Anthropic message has no 'usage'")
    model = doc.get("model")
    return LLMResponse(
        content="".join(texts),  # type: ignore[arg-type]
        model=model if isinstance(model, str) and model else fallback_model,
        usage=Usage(
            _int(usage.get("input_tokens", 0), "input_tokens"),
            _int(usage.get("output_tokens", 0), "output_tokens"),
        ),
        finish_reason=finish_reason(doc.get("stop_reason")),
    )


def stream_error(doc: dict[str, Any]) -> LLMError:
    """The typed error for an ``error`` event (or body), by Anthropic's error type."""
    error = doc.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    text = " ".join(str(message).split())[:200]
    if kind == "overloaded_error":
        return ServerError(529, text)
    if kind == "api_error":
        return ServerError(500, text)
    if kind == "rate_limit_error":
        return RateLimited(f"rate limited: {text}")
    return InvalidResponse(f"Anthropic reported {kind or 'an error'}: {text}")


class AnthropicStreamDecoder:
    """Turns Messages API stream events into ``Chunk``s; the last carries stop reason and usage."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._input_tokens = 0
        self._output_tokens = 0
        self._stop_reason: object = None
        self._started = False

    def feed(self, event: str, data: str) -> list[Chunk]:
        """The chunks carried by one event (``event`` name and its ``data``)."""
        if event == "ping":
            return []
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
            return []
        if not self._started:
            raise InvalidResponse(f"Anthropic stream sent {kind!r} before message_start")
        if kind == "content_block_delta":
            delta = doc.get("delta")
            if not isinstance(delta, dict):
                raise InvalidResponse("content_block_delta has no 'delta'")
            if delta.get("type") != "text_delta":
                return []  # tool input or thinking: not part of the text answer
            text = delta.get("text")
            if not isinstance(text, str):
                raise InvalidResponse("text_delta has no string 'text'")
            return [Chunk(delta=text, model=self.model)] if text else []
        if kind == "message_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict) and "stop_reason" in delta:
                self._stop_reason = delta["stop_reason"]
            self._take_usage(doc.get("usage"))
            return []
        if kind == "message_stop":
            self.done = True
            usage = Usage(self._input_tokens, self._output_tokens)
            return [
                Chunk(finish_reason=finish_reason(self._stop_reason), usage=usage, model=self.model)
            ]
        return []  # content_block_start / content_block_stop and future event types

    def _take_usage(self, usage: object) -> None:
        if usage is None:
            return
        if not isinstance(usage, dict):
            raise InvalidResponse("Anthropic 'usage' must be an object")
        if "input_tokens" in usage:
            self._input_tokens = _int(usage["input_tokens"], "input_tokens")
        if "output_tokens" in usage:
            # Cumulative: message_delta's count replaces message_start's placeholder.
            self._output_tokens = _int(usage["output_tokens"], "output_tokens")

    def finish(self) -> None:
        """Check the stream ended with ``message_stop`` (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("Anthropic stream ended without 'message_stop'")


class AnthropicProvider(HTTPProvider):
    """Claude models through the Messages API at ``base_url``.

    ``api_key`` goes in the ``x-api-key`` header (usually read by the CLI from
    ``ANTHROPIC_API_KEY``); ``max_tokens_default`` fills the API's required ``max_tokens``.
    """

    kind = "anthropic"

    def __init__(
        self,
        api_key: str,
        model: str = "claude-3-5-haiku-latest",
        base_url: str = "https://api.anthropic.com",
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
        max_tokens_default: int = 1024,
    ) -> None:
        if api_key is None:
            raise TypeError("AnthropicProvider needs an api_key")
        super().__init__(
            base_url=base_url,
            model=model,
            api_key=api_key,
            http_client=http_client,
            timeout=timeout,
            label="anthropic",
        )
        if isinstance(max_tokens_default, bool) or not isinstance(max_tokens_default, int):
            raise TypeError("max_tokens_default must be an int")
        if max_tokens_default < 1:
            raise ValueError("max_tokens_default must be at least 1")
        self.max_tokens_default = max_tokens_default

    def cache_identity(self) -> tuple[str, ...]:
        """The HTTP identity plus ``max_tokens_default``: it decides where answers stop."""
        return (*super().cache_identity(), f"max_tokens_default={self.max_tokens_default}")

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        assert self._key is not None  # the constructor requires one
        return {
            "x-api-key": self._key.reveal(),
            "anthropic-version": ANTHROPIC_VERSION,
            "accept": accept,
        }

    def _payload(self, request: LLMRequest, model: str, stream: bool) -> dict[str, Any]:
        return build_anthropic_payload(
            request, model, max_tokens_default=self.max_tokens_default, stream=stream
        )

    async def is_available(self) -> bool:
        """True when ``GET /v1/models`` answers 2xx (a bad key answers 401: False)."""
        return await self._probe("/v1/models", self._headers())

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One message, non-streamed."""
        request.validate(self.limits)
        model = self._model_for(request)
        started = time.perf_counter()
        doc = await self._post(
            request,
            "/v1/messages",
            headers=self._headers(),
            payload=self._payload(request, model, stream=False),
            what="anthropic messages",
        )
        return dataclasses.replace(
            parse_message(doc, model), latency_ms=(time.perf_counter() - started) * 1000
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream a message over SSE, yielding text as it arrives."""
        request.validate(self.limits)
        model = self._model_for(request)
        decoder = AnthropicStreamDecoder(model)
        lines = self._lines(
            request,
            "/v1/messages",
            headers=self._headers("text/event-stream"),
            payload=self._payload(request, model, stream=True),
            what="anthropic messages stream",
        )
        async for chunk in decoded_sse(
            lines, decoder, lambda e: decoder.feed(e.event, e.data), self._redactor
        ):
            yield chunk
