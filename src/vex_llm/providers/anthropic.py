"""``AnthropicProvider``: Anthropic's Messages API (``POST /v1/messages``), with SSE streaming.

The translation both ways lives in :mod:`vex_llm.wire.anthropic_messages` (pure): system and
developer turns go to ``system``, tools and tool results to ``tool_use`` / ``tool_result``
blocks, and what the API cannot honour (seed, penalties, ``n`` > 1, logprobs, structured
output) raises :class:`~vex_llm.errors.UnsupportedFeature` before any I/O rather than being
answered as if it had been applied. ``max_tokens`` is required by the API, so a request
without one gets ``max_tokens_default``. A stream that ends without ``message_stop`` raises
``InvalidResponse``. A request that came in Anthropic's own format (``LLMRequest.raw``, the
proxy's ``/v1/messages`` door) is sent as it came.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.providers._base import HTTPProvider
from vex_llm.providers._http import decoded_sse
from vex_llm.validation import positive_int
from vex_llm.wire.anthropic_messages import (
    ANTHROPIC_MESSAGES,
    build_payload,
    finish_reason,
    parse_message,
    stream_error,
)
from vex_llm.wire.anthropic_stream import AnthropicStreamDecoder

__all__ = [
    "ANTHROPIC_VERSION",
    "AnthropicProvider",
    "AnthropicStreamDecoder",
    "build_anthropic_payload",
    "finish_reason",
    "parse_message",
    "stream_error",
]

ANTHROPIC_VERSION = "2023-06-01"

#: The ``/v1/messages`` body for a request (see :mod:`vex_llm.wire.anthropic_messages`).
build_anthropic_payload = build_payload


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
        positive_int("max_tokens_default", max_tokens_default)
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
        if request.raw is not None and request.raw_format == ANTHROPIC_MESSAGES:
            # A body that came in this format goes out as it came: only the model name (the
            # upstream's) and the streaming flag (how the cache asks) are ours to set.
            payload = {**request.raw.value, "model": model}
            payload.pop("stream", None)
            return {**payload, "stream": True} if stream else payload
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
        """Stream a message over SSE: one chunk per event (kept as ``raw``), then the last."""
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
