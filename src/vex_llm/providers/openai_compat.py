"""``OpenAICompatibleProvider``: the OpenAI Chat Completions wire format, and its presets.

One class serves every backend that speaks ``POST {base_url}/chat/completions``: OpenAI,
DeepSeek, Mistral, Groq, and local servers (llama.cpp's ``llama-server``, vLLM, LM Studio).
``base_url`` is given the way OpenAI's own client takes it, e.g. ``http://127.0.0.1:8080/v1``.
Embeddings are ``POST {base_url}/embeddings`` (:meth:`OpenAICompatibleProvider.embed`).
Streaming is SSE (``data: {...}`` lines ending with ``data: [DONE]``); usage arrives in a last
chunk with empty ``choices`` when ``stream_options.include_usage`` is sent. Every field of the
request is sent (``extra`` as it came) and every answer keeps the backend's JSON as ``raw``;
the wire format itself is pure code in :mod:`vex_llm.wire.openai_chat`.

It also speaks OpenAI's other two text APIs, for requests whose ``operation`` names them:
legacy ``POST {base_url}/completions`` (:mod:`vex_llm.wire.openai_completions`) and
``POST {base_url}/responses`` (:mod:`vex_llm.wire.openai_responses`); the request body is
``extra`` as it came (the model set), and the answers keep their JSON and events as ``raw``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import UnsupportedFeature
from vex_llm.models import OPENAI_COMPLETIONS, OPENAI_RESPONSES, Chunk, LLMRequest, LLMResponse
from vex_llm.providers._http import decoded_sse
from vex_llm.providers.base import HTTPProvider, passed_on
from vex_llm.providers.sse import SSEEvent
from vex_llm.wire.embeddings import openai_embeddings_payload, parse_openai_embeddings
from vex_llm.wire.openai_chat import OpenAIStreamDecoder, build_payload, parse_completion
from vex_llm.wire.openai_completions import (
    CompletionsStreamDecoder,
    operation_payload,
    parse_text_completion,
)
from vex_llm.wire.openai_responses import ResponsesStreamDecoder, parse_response

__all__ = ["MISTRAL_MODELS", "OpenAICompatibleProvider", "OpenAIStreamDecoder", "build_payload"]

#: Mistral's model families by short name; ``mistral(model="small")`` picks the latest.
MISTRAL_MODELS = {
    "large": "mistral-large-latest",
    "medium": "mistral-medium-latest",
    "small": "mistral-small-latest",
    "codestral": "codestral-latest",
}


class OpenAICompatibleProvider(HTTPProvider):
    """A backend speaking OpenAI's Chat Completions API at ``base_url``.

    ``api_key`` (None for local servers) is sent as a bearer token. ``timeout`` (seconds) is
    the default bound on a whole response; ``LLMRequest.timeout`` overrides it. An
    ``http_client`` passed in is used as is and not closed by :meth:`aclose`.
    ``seed_field`` and ``stream_usage`` adapt to backends that name the seed differently or
    reject ``stream_options`` (Mistral). Presets: :meth:`openai`, :meth:`deepseek`,
    :meth:`mistral`, :meth:`groq`.
    """

    kind = "openai-compatible"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str = "default",
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
        *,
        label: str = "openai-compatible",
        seed_field: str = "seed",
        stream_usage: bool = True,
    ) -> None:
        super().__init__(
            base_url=base_url,
            model=model,
            api_key=api_key,
            http_client=http_client,
            timeout=timeout,
            label=label,
        )
        self.seed_field = seed_field
        self.stream_usage = stream_usage

    @classmethod
    def openai(
        cls, api_key: str, model: str = "gpt-4o-mini", **options: Any
    ) -> OpenAICompatibleProvider:
        """OpenAI (``https://api.openai.com/v1``); its key is usually in ``OPENAI_API_KEY``."""
        return cls("https://api.openai.com/v1", api_key, model, label="openai", **options)

    @classmethod
    def deepseek(
        cls, api_key: str, model: str = "deepseek-chat", **options: Any
    ) -> OpenAICompatibleProvider:
        """DeepSeek (``https://api.deepseek.com``); key usually in ``DEEPSEEK_API_KEY``."""
        return cls("https://api.deepseek.com", api_key, model, label="deepseek", **options)

    @classmethod
    def mistral(
        cls, api_key: str, model: str = "small", **options: Any
    ) -> OpenAICompatibleProvider:
        """Mistral (``https://api.mistral.ai/v1``); key usually in ``MISTRAL_API_KEY``.

        ``model`` is ``large``, ``medium``, ``small`` or ``codestral`` (the latest of that
        family), or any full Mistral model name. Mistral calls the seed ``random_seed`` and
        sends usage in its last chunk unasked.
        """
        options.setdefault("seed_field", "random_seed")
        options.setdefault("stream_usage", False)
        return cls(
            "https://api.mistral.ai/v1",
            api_key,
            MISTRAL_MODELS.get(model, model),
            label="mistral",
            **options,
        )

    @classmethod
    def groq(
        cls, api_key: str, model: str = "llama-3.1-8b-instant", **options: Any
    ) -> OpenAICompatibleProvider:
        """Groq (``https://api.groq.com/openai/v1``); key usually in ``GROQ_API_KEY``."""
        return cls("https://api.groq.com/openai/v1", api_key, model, label="groq", **options)

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self._key is not None:
            headers["authorization"] = f"Bearer {self._key.reveal()}"
        return headers

    async def is_available(self) -> bool:
        """True when ``GET {base_url}/models`` answers 2xx (a bad key answers 401: False)."""
        return await self._probe("/models", self._headers())

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One chat completion (or the ``operation`` asked for), non-streamed."""
        request.validate(self.limits)
        model = self._model_for(request)
        if request.operation is not None:
            return await self._complete_operation(request, model)
        payload = build_payload(
            request, model, stream=False, seed_field=self.seed_field, stream_usage=False
        )
        started = time.perf_counter()
        kept: list[tuple[str, str]] = []
        doc = await self._post(
            request,
            "/chat/completions",
            headers=self._headers(),
            payload=payload,
            what=f"{self.label} chat completion",
            on_headers=lambda h: kept.extend(passed_on(h)),
        )
        return dataclasses.replace(
            parse_completion(doc, model),
            latency_ms=(time.perf_counter() - started) * 1000,
            headers=tuple(kept),
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The vectors of ``request.inputs`` from ``POST {base_url}/embeddings``."""
        request.validate(self.limits)
        model = request.model or self.model
        started = time.perf_counter()
        kept: list[tuple[str, str]] = []
        doc = await self._post(
            request,
            "/embeddings",
            headers=self._headers(),
            payload=openai_embeddings_payload(request, model),
            what=f"{self.label} embeddings",
            on_headers=lambda h: kept.extend(passed_on(h)),
        )
        vectors, answered, tokens = parse_openai_embeddings(
            doc, len(request.inputs), request.dimensions, model, self.name()
        )
        return EmbeddingResponse.of(
            vectors,
            answered,
            tokens or 0,
            latency_ms=(time.perf_counter() - started) * 1000,
            headers=tuple(kept),
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream a chat completion (or the ``operation`` asked for) over SSE, yielding text
        as it arrives."""
        request.validate(self.limits)
        model = self._model_for(request)
        if request.operation is not None:
            async for chunk in self._stream_operation(request, model):
                yield chunk
            return
        payload = build_payload(
            request,
            model,
            stream=True,
            seed_field=self.seed_field,
            stream_usage=self.stream_usage,
        )
        decoder = OpenAIStreamDecoder(model)
        kept: list[tuple[str, str]] = []
        lines = self._lines(
            request,
            "/chat/completions",
            headers={**self._headers(), "accept": "text/event-stream"},
            payload=payload,
            what=f"{self.label} chat completion stream",
            on_headers=lambda h: kept.extend(passed_on(h)),
        )
        first = True
        async for chunk in decoded_sse(
            lines, decoder, lambda event: decoder.feed(event.data), self._redactor
        ):
            if first and kept:
                chunk = dataclasses.replace(chunk, headers=tuple(kept))
            first = False
            yield chunk

    # -- OpenAI's completions and Responses APIs (LLMRequest.operation) ---------------------

    def _path(self, request: LLMRequest) -> str:
        path = _OPERATION_PATHS.get(request.operation)  # type: ignore[arg-type]
        if path is None:
            raise UnsupportedFeature(
                "operation", self.label, f"it speaks no {request.operation!r} API"
            )
        return path

    async def _complete_operation(self, request: LLMRequest, model: str) -> LLMResponse:
        path = self._path(request)
        started = time.perf_counter()
        kept: list[tuple[str, str]] = []
        doc = await self._post(
            request,
            path,
            headers=self._headers(),
            payload=operation_payload(request, model, stream=False),
            what=f"{self.label} {path[1:]}",
            on_headers=lambda h: kept.extend(passed_on(h)),
        )
        parse = parse_text_completion if request.operation == OPENAI_COMPLETIONS else parse_response
        return dataclasses.replace(
            parse(doc, model),
            latency_ms=(time.perf_counter() - started) * 1000,
            headers=tuple(kept),
        )

    async def _stream_operation(self, request: LLMRequest, model: str) -> AsyncIterator[Chunk]:
        path = self._path(request)
        decoder: CompletionsStreamDecoder | ResponsesStreamDecoder
        feed: Callable[[SSEEvent], list[Chunk]]
        if request.operation == OPENAI_COMPLETIONS:
            decoder = text = CompletionsStreamDecoder(model)
            feed = lambda event: text.feed(event.data)  # noqa: E731
        else:
            decoder = events = ResponsesStreamDecoder(model)
            feed = lambda event: events.feed(event.event, event.data)  # noqa: E731
        kept: list[tuple[str, str]] = []
        lines = self._lines(
            request,
            path,
            headers={**self._headers(), "accept": "text/event-stream"},
            payload=operation_payload(
                request,
                model,
                stream=True,
                stream_usage=self.stream_usage and request.operation == OPENAI_COMPLETIONS,
            ),
            what=f"{self.label} {path[1:]} stream",
            on_headers=lambda h: kept.extend(passed_on(h)),
        )
        first = True
        async for chunk in decoded_sse(lines, decoder, feed, self._redactor):
            if first and kept:
                chunk = dataclasses.replace(chunk, headers=tuple(kept))
            first = False
            yield chunk


#: Where each ``LLMRequest.operation`` this provider speaks is sent.
_OPERATION_PATHS = {OPENAI_COMPLETIONS: "/completions", OPENAI_RESPONSES: "/responses"}
