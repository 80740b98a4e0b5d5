"""``CircuitBreaker``: stop calling a backend that keeps failing, and probe it back to health.

Thin I/O around :class:`~vex_llm.resilience.circuit.Circuit`: every call asks the circuit
for a ticket and reports how it went. While the circuit is open, calls fail at once with
:class:`~vex_llm.errors.NotAvailable`, whose ``retry_after`` is the time to the next probe
(the proxy answers 503 with that ``Retry-After``). Use one breaker per backend, shared by
everything that calls it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import NotAvailable
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider, WrapperProvider
from vex_llm.resilience.circuit import Circuit, CircuitState, Ticket, outcome_of
from vex_llm.resilience.policy import BreakerPolicy

__all__ = ["CircuitBreaker"]


class CircuitBreaker(WrapperProvider):
    """Wraps ``inner`` with a circuit breaker under ``policy`` (see :class:`BreakerPolicy`).

    ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(
        self,
        inner: LLMProvider,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(inner, LLMProvider):
            raise TypeError(f"inner must be an LLMProvider, not {type(inner).__name__}")
        super().__init__(inner)  # limits read and set through to ``inner``
        self.circuit = Circuit(policy, clock=clock)
        #: Calls refused because the circuit was open.
        self.rejected = 0

    @property
    def state(self) -> CircuitState:
        """``closed``, ``open`` or ``half_open``."""
        return self.circuit.state

    def name(self) -> str:
        """``breaker(<inner name>)``."""
        return f"breaker({self.inner.name()})"

    def cache_identity(self) -> tuple[str, ...]:
        """The wrapped provider's identity: a breaker changes no answer."""
        return self.inner.cache_identity()

    async def is_available(self) -> bool:
        """False while the circuit is open (without calling the backend), else the inner's."""
        if self.circuit.state == "open":
            return False
        return await self.inner.is_available()

    def _ticket(self) -> Ticket:
        ticket = self.circuit.acquire()
        if ticket is None:
            self.rejected += 1
            wait = self.circuit.retry_in()
            raise NotAvailable(
                f"{self.inner.name()}: circuit open after repeated failures; "
                f"next attempt in {wait:.1f} s",
                retry_after=wait,
            )
        return ticket

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The wrapped provider's answer, or ``NotAvailable`` at once while open."""
        ticket = self._ticket()
        try:
            response = await self.inner.complete(request)
        except BaseException as exc:
            self.circuit.record(ticket, outcome_of(_cause(exc), self.circuit.policy))
            raise
        self.circuit.record(ticket, "success")
        return response

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The wrapped provider's embeddings, or ``NotAvailable`` at once while open."""
        ticket = self._ticket()
        try:
            response = await self.inner.embed(request)
        except BaseException as exc:
            self.circuit.record(ticket, outcome_of(_cause(exc), self.circuit.policy))
            raise
        self.circuit.record(ticket, "success")
        return response

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The wrapped stream; its outcome is recorded when it ends (a caller leaving early
        says nothing about the backend)."""
        ticket = self._ticket()
        outcome: BaseException | None = asyncio.CancelledError()
        source = self.inner.stream(request)
        try:
            async for chunk in source:
                if chunk.is_final:
                    outcome = None  # the answer is whole, whatever the consumer does next
                yield chunk
            outcome = None
        except BaseException as exc:
            if outcome is not None:
                outcome = exc
            raise
        finally:
            self.circuit.record(ticket, outcome_of(_cause(outcome), self.circuit.policy))
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.inner.aclose()


def _cause(exc: BaseException | None) -> BaseException | None:
    # A consumer leaving a stream raises GeneratorExit into it: like a cancellation, it
    # tells nothing about the backend.
    if isinstance(exc, GeneratorExit):
        return asyncio.CancelledError()
    return exc
