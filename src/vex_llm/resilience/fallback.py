"""``FallbackProvider``: when one provider fails in a way another could cover, ask the next.

Providers are tried in order; a failure of a kind in ``fall_back_on`` (by default: 429,
5xx, connection failures, timeouts, an open circuit breaker, a malformed answer) moves on
to the next one, any other failure (a 4xx: the request itself is wrong) is raised at once,
and the last provider's failure is raised when all failed. A stream falls back only before
its first chunk. A request's own ``timeout`` bounds the whole chain.

Caching: an answer must be stored under the identity of the provider that produced it.
Put a cache *inside* the chain, ``FallbackProvider([CachedProvider(a), CachedProvider(b)])``
(what the proxy does): b's answer is then stored under b's key, and a later request for a
gets a's answer or a miss, never b's. A cache *around* the chain keys answers by the
chain's identity, which names every member, so it never passes one off as a's either; but
it keeps a fallback answer for its whole ttl.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Generic, TypeVar

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import LLMError, Timeout
from vex_llm.models import Chunk, InputLimits, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider
from vex_llm.resilience.attempt import with_timeout
from vex_llm.resilience.classify import FailureKind, failure_kind

__all__ = ["DEFAULT_FALL_BACK_ON", "FallbackProvider"]

P = TypeVar("P", bound=LLMProvider)
T = TypeVar("T")
#: A request kind: chat or embeddings.
Q = TypeVar("Q", LLMRequest, EmbeddingRequest)

#: The failures another provider may well not have.
DEFAULT_FALL_BACK_ON: frozenset[FailureKind] = frozenset(
    {"rate_limited", "server", "connection", "timeout", "unavailable", "invalid"}
)


class FallbackProvider(LLMProvider, Generic[P]):
    """Tries ``providers`` in order (see the module docstring).

    ``answered[i]`` counts the answers provider ``i`` gave; every answer from ``i > 0`` is
    a fallback taken. ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(
        self,
        providers: Sequence[P],
        *,
        fall_back_on: Collection[FailureKind] = DEFAULT_FALL_BACK_ON,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers: tuple[P, ...] = tuple(providers)
        if not self.providers:
            raise ValueError("a FallbackProvider needs at least one provider")
        for provider in self.providers:
            if not isinstance(provider, LLMProvider):
                raise TypeError(f"providers must be LLMProviders, not {type(provider).__name__}")
        self.fall_back_on = frozenset(fall_back_on)
        self.answered = [0] * len(self.providers)
        self._clock = clock

    @property
    def limits(self) -> InputLimits:
        """The first provider's size limits; setting them sets every provider's (any of them
        may answer, so all must accept what this accepts)."""
        return self.providers[0].limits

    @limits.setter
    def limits(self, value: InputLimits) -> None:
        for provider in self.providers:
            provider.limits = value

    def name(self) -> str:
        """``fallback(<first name>, <second name>, ...)``."""
        return f"fallback({', '.join(p.name() for p in self.providers)})"

    def cache_identity(self) -> tuple[str, ...]:
        """Every member's identity, length-prefixed: never equal to any one member's."""
        parts = ["fallback"]
        for provider in self.providers:
            identity = provider.cache_identity()
            parts += [str(len(identity)), *identity]
        return tuple(parts)

    async def is_available(self) -> bool:
        """True when any member is available."""
        for provider in self.providers:
            if await provider.is_available():
                return True
        return False

    def falls_back(self, exc: BaseException) -> bool:
        """Whether ``exc`` from one member lets the next one try."""
        return failure_kind(exc) in self.fall_back_on

    async def first_answer(
        self,
        request: Q,
        call: Callable[[P, Q], Awaitable[T]],
    ) -> tuple[T, int]:
        """``call(member, request)`` on each member in turn; the first result and its index.

        The general form of :meth:`complete`, for callers that need more than an
        ``LLMResponse`` from each member (the proxy asks its caches how they answered).
        """
        deadline = None if request.timeout is None else self._clock() + request.timeout
        last = len(self.providers) - 1
        for index, provider in enumerate(self.providers):
            attempt = request
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise Timeout(f"no answer within {request.timeout:g} s from any provider")
                attempt = with_timeout(request, remaining)
            try:
                result = await call(provider, attempt)
            except LLMError as exc:
                if index == last or not self.falls_back(exc):
                    raise
                continue
            self.answered[index] += 1
            return result, index
        raise AssertionError("unreachable: the last provider's failure is raised")

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The first answer any member gives (see the module docstring)."""
        response, _ = await self.first_answer(request, lambda p, r: p.complete(r))
        return response

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The first embeddings any member gives."""
        response, _ = await self.first_answer(request, lambda p, r: p.embed(r))
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The first member's stream that yields a chunk; no fallback after that chunk."""
        (source, first), _ = await self.first_answer(request, _open_stream)
        try:
            if first is None:
                return
            yield first
            async for chunk in source:
                yield chunk
        finally:
            await _close(source)

    async def aclose(self) -> None:
        """Close every member."""
        for provider in self.providers:
            await provider.aclose()


async def _open_stream(
    provider: LLMProvider, request: LLMRequest
) -> tuple[AsyncIterator[Chunk], Chunk | None]:
    """``provider``'s stream and its first chunk (None for an empty stream)."""
    source = provider.stream(request)
    try:
        return source, await anext(source)
    except StopAsyncIteration:
        return source, None
    except BaseException:
        await _close(source)
        raise


async def _close(source: AsyncIterator[Chunk]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
