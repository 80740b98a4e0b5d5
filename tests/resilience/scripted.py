"""Test doubles for the resilience wrappers: a fake clock whose sleep moves it, and a
provider that plays a script of answers and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from vex_llm import Chunk, LLMError, LLMProvider, LLMRequest, LLMResponse, Usage

REQUEST = LLMRequest(prompt="hello", temperature=0.0)


class FakeClock:
    """Monotonic seconds that move only when slept on (or advanced) by the test."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


Step = str | LLMError


class ScriptedProvider(LLMProvider):
    """Answers each call with the next step of ``script``: a text, or an error to raise.

    When the script runs out, ``then`` answers. Streams yield ``chunks_before`` text chunks,
    then fail with the step's error if it is one (``fail_after_first``), else finish.
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        then: Step = "ok",
        label: str = "scripted",
        fail_after_first: bool = False,
    ) -> None:
        self.script = list(script)
        self.then = then
        self.label = label
        self.fail_after_first = fail_after_first
        self.calls = 0
        self.requests: list[LLMRequest] = []
        self.closed = False

    def name(self) -> str:
        return self.label

    def cache_identity(self) -> tuple[str, ...]:
        return ("scripted", self.label)

    async def is_available(self) -> bool:
        return True

    def _next(self, request: LLMRequest) -> Step:
        self.calls += 1
        self.requests.append(request)
        return self.script.pop(0) if self.script else self.then

    async def complete(self, request: LLMRequest) -> LLMResponse:
        step = self._next(request)
        if isinstance(step, LLMError):
            raise step
        return LLMResponse(content=step, model=self.label, usage=Usage(2, 3))

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        step = self._next(request)
        if isinstance(step, LLMError):
            if self.fail_after_first:
                yield Chunk(delta="partial ", model=self.label)
            raise step
        yield Chunk(delta=step, model=self.label)
        yield Chunk(finish_reason="stop", usage=Usage(2, 3), model=self.label)

    async def aclose(self) -> None:
        self.closed = True
