"""``OpenAICompatibleProvider``: the OpenAI Chat Completions wire format, and its presets.

One class serves every backend that speaks ``POST {base_url}/chat/completions``: OpenAI,
DeepSeek, Mistral, Groq, and local servers (llama.cpp's ``llama-server``, vLLM, LM Studio).
``base_url`` is given the way OpenAI's own client takes it, e.g. ``http://127.0.0.1:8080/v1``.
Streaming is SSE (``data: {...}`` lines ending with ``data: [DONE]``); usage arrives in a last
chunk with empty ``choices`` when ``stream_options.include_usage`` is sent. The payload and the
stream decoding are pure functions / a small state machine, tested without I/O.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from vex_llm.errors import InvalidResponse
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Usage
from vex_llm.providers._base import HTTPProvider
from vex_llm.providers._http import decoded_sse

__all__ = ["MISTRAL_MODELS", "OpenAICompatibleProvider", "OpenAIStreamDecoder", "build_payload"]

#: Mistral's model families by short name; ``mistral(model="small")`` picks the latest.
MISTRAL_MODELS = {
    "large": "mistral-large-latest",
    "medium": "mistral-medium-latest",
    "small": "mistral-small-latest",
    "codestral": "codestral-latest",
}


def build_payload(
    request: LLMRequest,
    model: str,
    *,
    stream: bool,
    seed_field: str = "seed",
    stream_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of a chat completion for ``request``; unset fields are left out."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.conversation()],
    }
    for name in ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(request, name)
        if value is not None:
            payload[name] = value
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.seed is not None:
        payload[seed_field] = request.seed
    if stream:
        payload["stream"] = True
        if stream_usage:
            payload["stream_options"] = {"include_usage": True}
    return payload


def _usage(value: object) -> Usage | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidResponse("'usage' must be an object")
    prompt, completion = value.get("prompt_tokens", 0), value.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise InvalidResponse("usage token counts must be integers")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _error_text(doc: dict[str, Any]) -> str:
    error = doc.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


def parse_completion(doc: dict[str, Any], fallback_model: str) -> LLMResponse:
    """An ``LLMResponse`` from a chat completion object (latency left at 0)."""
    if "error" in doc:
        raise InvalidResponse(f"backend answered an error object: {_error_text(doc)}")
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidResponse("chat completion has no 'choices'")
    message = choices[0].get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise InvalidResponse("chat completion choice has no text 'message.content'")
    finish = choices[0].get("finish_reason")
    model = doc.get("model")
    return LLMResponse(
        content=message["content"],
        model=model if isinstance(model, str) and model else fallback_model,
        usage=_usage(doc.get("usage")) or Usage(),
        finish_reason=finish if isinstance(finish, str) else "stop",
    )


class OpenAIStreamDecoder:
    """Turns the ``data:`` payloads of a chat completion stream into ``Chunk``s.

    Text deltas are passed on at once; ``finish_reason`` and usage (which may come in a later
    chunk with empty ``choices``) are held back and emitted together in one final chunk when
    ``[DONE]`` arrives. :meth:`finish` raises ``InvalidResponse`` if ``[DONE]`` never came.
    """

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
            return []  # the usage-only chunk
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise InvalidResponse("stream chunk choice has no 'delta' object")
        if isinstance(choice.get("finish_reason"), str):
            self._finish = choice["finish_reason"]
        text = delta.get("content")
        if text is not None and not isinstance(text, str):
            raise InvalidResponse("stream delta 'content' is not a string")
        return [Chunk(delta=text, model=self.model)] if text else []

    def finish(self) -> None:
        """Check the stream ended properly (raise ``InvalidResponse`` if not)."""
        if not self.done:
            raise InvalidResponse("stream ended without its terminal 'data: [DONE]'")


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
        """One chat completion, non-streamed."""
        request.validate(self.limits)
        model = self._model_for(request)
        payload = build_payload(
            request, model, stream=False, seed_field=self.seed_field, stream_usage=False
        )
        started = time.perf_counter()
        doc = await self._post(
            request,
            "/chat/completions",
            headers=self._headers(),
            payload=payload,
            what=f"{self.label} chat completion",
        )
        return dataclasses.replace(
            parse_completion(doc, model), latency_ms=(time.perf_counter() - started) * 1000
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream a chat completion over SSE, yielding text as it arrives."""
        request.validate(self.limits)
        model = self._model_for(request)
        payload = build_payload(
            request,
            model,
            stream=True,
            seed_field=self.seed_field,
            stream_usage=self.stream_usage,
        )
        decoder = OpenAIStreamDecoder(model)
        lines = self._lines(
            request,
            "/chat/completions",
            headers={**self._headers(), "accept": "text/event-stream"},
            payload=payload,
            what=f"{self.label} chat completion stream",
        )
        async for chunk in decoded_sse(
            lines, decoder, lambda event: decoder.feed(event.data), self._redactor
        ):
            yield chunk
