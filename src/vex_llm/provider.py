"""The provider contract: everything that turns an ``LLMRequest`` into an ``LLMResponse``.

A subclass implements ``name()``, ``is_available()`` and ``complete()``; ``stream()`` (one
chunk from ``complete``), ``ask()``, ``aclose()`` and ``async with`` come from this base.
``embed()`` (embeddings) raises ``UnsupportedFeature`` unless a backend has them.
Wrappers such as the cache implement the same contract, so they stack; ``WrapperProvider`` is
their base, and keeps one rule: the size limits live on the innermost provider, which checks
them before its I/O, and a wrapper reads and sets them there, so the whole stack agrees.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import UnsupportedFeature
from vex_llm.models import Chunk, InputLimits, LLMRequest, LLMResponse

__all__ = ["LLMProvider", "WrapperProvider"]


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

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The vectors of ``request.inputs``, in their order.

        This default is for backends without embeddings: ``UnsupportedFeature`` naming the
        provider, before any I/O.
        """
        raise UnsupportedFeature("embeddings", self.name(), "it has no embeddings endpoint")

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


class WrapperProvider(LLMProvider):
    """Base of providers that wrap another one (``inner``): a cache, a retry layer, ...

    ``limits`` is the wrapped provider's, read and written through: setting a wrapper's
    limits sets them on the provider that enforces them, however deep the stack, so a
    request the outer layer accepts is never refused by an inner one (or the reverse).
    ``is_available``, ``cache_identity`` and ``aclose`` go to the wrapped provider too; a
    subclass overrides what it adds to.
    """

    def __init__(self, provider: LLMProvider) -> None:
        if not isinstance(provider, LLMProvider):
            raise TypeError(f"provider must be an LLMProvider, not {type(provider).__name__}")
        self.inner = provider

    @property
    def limits(self) -> InputLimits:
        """The wrapped provider's size limits (setting them sets the wrapped provider's)."""
        return self.inner.limits

    @limits.setter
    def limits(self, value: InputLimits) -> None:
        if not isinstance(value, InputLimits):
            raise TypeError(f"limits must be an InputLimits, not {type(value).__name__}")
        self.inner.limits = value

    async def is_available(self) -> bool:
        """Whether the wrapped provider is available."""
        return await self.inner.is_available()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The wrapped provider's embeddings."""
        return await self.inner.embed(request)

    def cache_identity(self) -> tuple[str, ...]:
        """The wrapped provider's identity: a wrapper changes no answer."""
        return self.inner.cache_identity()

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.inner.aclose()
