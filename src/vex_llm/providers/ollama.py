"""``OllamaProvider``: Ollama's native chat API (``POST /api/chat``), with NDJSON streaming.

The translation both ways lives in :mod:`vex_llm.wire.ollama_chat` (pure): sampling fields go
in ``options`` under Ollama's names, tools keep OpenAI's shape, ``response_format`` becomes
``format``, and what Ollama cannot honour raises :class:`~vex_llm.errors.UnsupportedFeature`
before any I/O. Embeddings are ``POST /api/embed``. A streamed answer is one JSON object per
line; the last has ``"done": true``
with ``done_reason`` and the token counts ``prompt_eval_count`` / ``eval_count``. A stream
that ends before that line is cut short and raises ``InvalidResponse``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.providers._base import HTTPProvider
from vex_llm.providers._http import drain
from vex_llm.wire.embeddings import ollama_embed_payload, parse_ollama_embed
from vex_llm.wire.ollama_chat import OllamaStreamDecoder, build_payload, parse_chat

__all__ = ["OllamaProvider", "build_ollama_payload"]

#: The ``/api/chat`` body for a request (see :func:`vex_llm.wire.ollama_chat.build_payload`).
build_ollama_payload = build_payload


class OllamaProvider(HTTPProvider):
    """A model served by Ollama at ``base_url`` (default ``http://localhost:11434``).

    ``timeout`` (seconds) bounds a whole response unless ``LLMRequest.timeout`` says
    otherwise; an ``http_client`` passed in is not closed by :meth:`aclose`.
    """

    kind = "ollama"

    def __init__(
        self,
        base_url: str = "http://localhost:11434",
        model: str = "llama3.2",
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(
            base_url=base_url,
            model=model,
            api_key=None,
            http_client=http_client,
            timeout=timeout,
            label="ollama",
        )

    async def is_available(self) -> bool:
        """True when ``GET /api/tags`` answers 2xx."""
        return await self._probe("/api/tags", {})

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One chat answer, non-streamed."""
        request.validate(self.limits)
        model = self._model_for(request)
        started = time.perf_counter()
        doc = await self._post(
            request,
            "/api/chat",
            headers={"accept": "application/json"},
            payload=build_payload(request, model, stream=False),
            what="ollama chat",
        )
        return dataclasses.replace(
            parse_chat(doc, model), latency_ms=(time.perf_counter() - started) * 1000
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The vectors of ``request.inputs`` from ``POST /api/embed`` (text inputs only)."""
        request.validate(self.limits)
        model = request.model or self.model
        payload = ollama_embed_payload(request, model, self.name())
        started = time.perf_counter()
        doc = await self._post(
            request,
            "/api/embed",
            headers={"accept": "application/json"},
            payload=payload,
            what="ollama embed",
        )
        vectors, answered, tokens = parse_ollama_embed(
            doc, len(request.inputs), request.dimensions, model, self.name()
        )
        return EmbeddingResponse.of(
            vectors, answered, tokens or 0, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream the answer from Ollama's NDJSON lines: one chunk per line, then the last."""
        request.validate(self.limits)
        model = self._model_for(request)
        decoder = OllamaStreamDecoder(model)
        lines = self._lines(
            request,
            "/api/chat",
            headers={"accept": "application/x-ndjson"},
            payload=build_payload(request, model, stream=True),
            what="ollama chat stream",
        )
        async with aclosing(lines):
            async for batch in lines:
                for line in batch:
                    chunks = decoder.feed(line)
                    if decoder.done:
                        # Before the terminal chunk, since consumers stop at it (see drain).
                        await drain(lines)
                    for chunk in chunks:
                        yield chunk
                    if decoder.done:
                        return
        decoder.finish()
