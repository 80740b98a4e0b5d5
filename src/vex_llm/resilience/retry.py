"""``RetryingProvider``: try again what can succeed on a second try, within a deadline and a budget.

Thin I/O around two pure pieces: :func:`~vex_llm.resilience.backoff.plan_retry` (whether and
how long to wait) and :class:`~vex_llm.resilience.budget.RetryBudget` (whether retries are
still affordable). The request's ``timeout`` (or the policy's, when the request has none)
bounds the whole call, retries and waits included: each attempt is sent with the time that
is left as its own timeout. A stream is retried only until its first chunk has been handed
on; after that a failure reaches the caller, who already has part of an answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import LLMError, RateLimited, ServerError, Timeout
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider, WrapperProvider
from vex_llm.resilience.attempt import with_timeout
from vex_llm.resilience.backoff import plan_retry
from vex_llm.resilience.budget import RetryBudget
from vex_llm.resilience.classify import failure_kind
from vex_llm.resilience.policy import RetryPolicy

__all__ = ["RetryCounters", "RetryingProvider"]

#: A request kind (chat or embeddings) and what it is answered with.
Q = TypeVar("Q", LLMRequest, EmbeddingRequest)
A = TypeVar("A")


@dataclass(slots=True)
class RetryCounters:
    """What a ``RetryingProvider`` did: requests, retries made, retries the budget refused,
    and calls that gave up early because the wait would overrun the deadline or the limit."""

    requests: int = 0
    retries: int = 0
    budget_exhausted: int = 0
    gave_up_early: int = 0


class RetryingProvider(WrapperProvider):
    """Wraps ``inner`` with retries under ``policy`` (see :class:`RetryPolicy`).

    ``budget`` defaults to one built from the policy; pass one to share it between wrappers.
    ``clock`` (monotonic seconds), ``sleep`` and ``rand`` (uniform in [0, 1)) are injectable
    for tests.
    """

    def __init__(
        self,
        inner: LLMProvider,
        policy: RetryPolicy | None = None,
        *,
        budget: RetryBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not isinstance(inner, LLMProvider):
            raise TypeError(f"inner must be an LLMProvider, not {type(inner).__name__}")
        super().__init__(inner)  # limits read and set through to ``inner``
        self.policy = policy or RetryPolicy()
        self.budget = budget or RetryBudget(
            self.policy.budget_ratio,
            self.policy.budget_min_per_second,
            self.policy.budget_window,
            clock=clock,
        )
        self.counters = RetryCounters()
        self._clock = clock
        self._sleep = sleep
        self._rand = rand

    def name(self) -> str:
        """``retrying(<inner name>)``."""
        return f"retrying({self.inner.name()})"

    def cache_identity(self) -> tuple[str, ...]:
        """The wrapped provider's identity: retrying changes no answer."""
        return self.inner.cache_identity()

    async def is_available(self) -> bool:
        """Whether the wrapped provider is available."""
        return await self.inner.is_available()

    def _deadline(self, request: LLMRequest | EmbeddingRequest) -> float | None:
        timeout = request.timeout if request.timeout is not None else self.policy.timeout
        return None if timeout is None else self._clock() + timeout

    def _attempt_request(self, request: Q, deadline: float | None) -> Q:
        """``request`` with the time left as its timeout (the deadline covers every attempt)."""
        if deadline is None:
            return request
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise Timeout("no time left for another attempt before the request's deadline")
        if request.timeout == remaining:
            return request
        return with_timeout(request, remaining)

    async def _wait_before_retry(
        self, exc: LLMError, attempts: int, deadline: float | None
    ) -> bool:
        """Sleep before the next attempt and return True, or return False to give up."""
        remaining = None if deadline is None else deadline - self._clock()
        plan = plan_retry(
            self.policy,
            kind=failure_kind(exc),
            attempts=attempts,
            retry_after=exc.retry_after if isinstance(exc, RateLimited | ServerError) else None,
            remaining=remaining,
            rand=self._rand,
        )
        if plan.delay is None:
            if plan.reason in ("retry_after_too_long", "deadline"):
                self.counters.gave_up_early += 1
            return False
        if not self.budget.try_spend():
            self.counters.budget_exhausted += 1
            return False
        self.counters.retries += 1
        if plan.delay > 0:
            await self._sleep(plan.delay)
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The wrapped provider's answer, retrying retryable failures within the deadline."""
        return await self._retried(request, self.inner.complete)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The wrapped provider's embeddings, retried like :meth:`complete`."""
        return await self._retried(request, self.inner.embed)

    async def _retried(self, request: Q, call: Callable[[Q], Awaitable[A]]) -> A:
        self.counters.requests += 1
        self.budget.record_request()
        deadline = self._deadline(request)
        attempts = 0
        while True:
            attempt = self._attempt_request(request, deadline)
            attempts += 1
            try:
                if deadline is None:
                    return await call(attempt)
                async with asyncio.timeout(deadline - self._clock()):
                    return await call(attempt)
            except TimeoutError:
                limit = request.timeout or self.policy.timeout
                raise Timeout(f"no answer within {limit:g} s") from None
            except LLMError as exc:
                if not await self._wait_before_retry(exc, attempts, deadline):
                    raise

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The wrapped stream; failures before its first chunk are retried, later ones not."""
        self.counters.requests += 1
        self.budget.record_request()
        deadline = self._deadline(request)
        attempts = 0
        while True:
            source = self.inner.stream(self._attempt_request(request, deadline))
            attempts += 1
            try:
                first = await anext(source)
            except StopAsyncIteration:
                return
            except LLMError as exc:
                await _close(source)
                if not await self._wait_before_retry(exc, attempts, deadline):
                    raise
                continue
            except BaseException:
                await _close(source)
                raise
            break
        try:
            yield first
            async for chunk in source:
                yield chunk
        finally:
            await _close(source)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.inner.aclose()


async def _close(source: AsyncIterator[Chunk]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
