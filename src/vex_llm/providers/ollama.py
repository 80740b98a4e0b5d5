"""``OllamaProvider``: Ollama's native chat API (``POST /api/chat``), with NDJSON streaming.

Sampling fields go in ``options`` under Ollama's names (``num_predict`` for max_tokens). A
streamed answer is one JSON object per line; the last has ``"done": true`` with
``done_reason`` and the token counts ``prompt_eval_count`` / ``eval_count``. A stream that
ends before that line is cut short and raises ``InvalidResponse``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from vex_llm.errors import InvalidResponse
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Usage
from vex_llm.providers._base import HTTPProvider
from vex_llm.providers._http import drain, parse_json

__all__ = ["OllamaProvider", "build_ollama_payload", "parse_ollama_message"]

_OPTION_NAMES = {
    "temperature": "temperature",
    "max_tokens": "num_predict",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def build_ollama_payload(request: LLMRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The ``/api/chat`` body for ``request``; unset fields are left to the model's defaults."""
    options: dict[str, Any] = {}
    for ours, theirs in _OPTION_NAMES.items():
        value = getattr(request, ours)
        if value is not None:
            options[theirs] = value
    if request.stop:
        options["stop"] = list(request.stop)
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.conversation()],
        "stream": stream,
    }
    if options:
        payload["options"] = options
    return payload


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidResponse(f"Ollama field {name!r} must be an integer")
    return value


def parse_ollama_message(doc: dict[str, Any]) -> tuple[str, bool]:
    """``(text, done)`` from one ``/api/chat`` object; ``InvalidResponse`` if malformed."""
    if "error" in doc:
        raise InvalidResponse(f"Ollama reported an error: {str(doc['error'])[:200]}")
    message = doc.get("message")
    done = doc.get("done")
    if not isinstance(done, bool):
        raise InvalidResponse("Ollama chat object has no boolean 'done'")
    if message is None and done:
        return "", True
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise InvalidResponse("Ollama chat object has no text 'message.content'")
    return message["content"], done


def _final_fields(doc: dict[str, Any]) -> tuple[str, Usage]:
    reason = doc.get("done_reason")
    usage = Usage(_count(doc, "prompt_eval_count"), _count(doc, "eval_count"))
    return (reason if isinstance(reason, str) and reason else "stop"), usage


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
            payload=build_ollama_payload(request, model, stream=False),
            what="ollama chat",
        )
        text, done = parse_ollama_message(doc)
        if not done:
            raise InvalidResponse("Ollama answered a partial message to a non-streamed request")
        reason, usage = _final_fields(doc)
        answered = doc.get("model")
        return LLMResponse(
            content=text,
            model=answered if isinstance(answered, str) and answered else model,
            usage=usage,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=reason,
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Stream the answer from Ollama's NDJSON lines."""
        request.validate(self.limits)
        model = self._model_for(request)
        lines = self._lines(
            request,
            "/api/chat",
            headers={"accept": "application/x-ndjson"},
            payload=build_ollama_payload(request, model, stream=True),
            what="ollama chat stream",
        )
        async with aclosing(lines):
            async for line in lines:
                if not line.strip():
                    continue
                doc = parse_json(line, "ollama chat stream line")
                text, done = parse_ollama_message(doc)
                if isinstance(doc.get("model"), str) and doc["model"]:
                    model = doc["model"]
                if done:
                    if text:
                        yield Chunk(delta=text, model=model)
                    reason, usage = _final_fields(doc)
                    # Before the terminal chunk, since consumers stop at it (see drain).
                    await drain(lines)
                    yield Chunk(finish_reason=reason, usage=usage, model=model)
                    return
                if text:
                    yield Chunk(delta=text, model=model)
        raise InvalidResponse("Ollama stream ended without its final 'done: true' line")
