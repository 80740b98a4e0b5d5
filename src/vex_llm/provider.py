"""The provider contract: everything that turns an ``LLMRequest`` into an ``LLMResponse``.

A subclass implements ``name()``, ``is_available()`` and ``complete()``; ``stream()`` (one
chunk from ``complete``), ``ask()``, ``aclose()`` and ``async with`` come from this base.
Wrappers such as the cache implement the same contract, so they stack.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from vex_llm.models import Chunk, InputLimits, LLMRequest, LLMResponse

__all__ = ["LLMProvider"]


class LLMProvider(abc.ABC):
    """Abstract base of every provider and provider wrapper."""

    #: Size limits that :meth:`LLMRequest.validate` enforces before I/O.
    limits: InputLimits = InputLimits()

    @abc.abstractmethod
    def name(self) -> str:
        """A short label such as ``"openai:gpt-4o-mini"``; wrappers show what they wrap."""

    @abc.abstractmethod
    async def is_available(self) -> bool:
        """True only when the backend answers correctly right now (not on 401 or 5xx)."""

    @abc.abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer ``request`` in one piece."""

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Yield the answer as chunks; the last one carries ``finish_reason`` and ``usage``.

        This default serves backends without native streaming: one chunk from ``complete``.
        """
        response = await self.complete(request)
        yield Chunk(
            delta=response.content,
            finish_reason=response.finish_reason or "stop",
            usage=response.usage,
            model=response.model,
        )

    async def ask(self, prompt: str) -> str:
        """Answer one prompt with :meth:`LLMRequest.simple` defaults and return the text."""
        return (await self.complete(LLMRequest.simple(prompt))).content

    def cache_identity(self) -> tuple[str, ...]:
        """What identifies this backend in a cache key (name, base URL, default model).

        Two providers with the same identity must give interchangeable answers; HTTP providers
        override this to add their base URL and default model.
        """
        return (self.name(),)

    async def aclose(self) -> None:  # noqa: B027 - a no-op default is the point
        """Release what the provider owns (HTTP clients, child processes). Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
