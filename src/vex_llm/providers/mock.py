"""``MockProvider``: a deterministic provider for tests and demos, with no I/O.

It answers from a cycling list of canned responses, a constant, or the original crate's
keyword rules (``smart``); it can add latency, fail with a given error, and counts its calls
so tests can assert how often the upstream was really reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator, Sequence

from vex_llm.embeddings import EmbeddingInput, EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import LLMError, UnsupportedFeature
from vex_llm.models import Chunk, LLMRequest, LLMResponse, Usage
from vex_llm.provider import LLMProvider
from vex_llm.validation import positive_int, positive_number

__all__ = ["MockProvider", "mock_vector", "smart_answer"]

_CHALLENGE = (
    "After careful analysis, I found the following concerns:\n"
    "1. The claim requires additional evidence\n"
    "2. There may be alternative interpretations\n"
    "3. Confidence level: 70%\n\n"
    "Recommendation: Proceed with caution."
)
_RESEARCH = (
    "Based on my analysis:\n\n"
    "## Key Findings\n"
    "1. Primary insight discovered\n"
    "2. Supporting evidence found\n"
    "3. Potential implications identified\n\n"
    "## Confidence: 85%\n\n"
    "This analysis is based on available information."
)
_SUMMARY = "Summary: The key points are consolidated into a concise overview."
_ECHO_CHARS = 50


def smart_answer(prompt: str) -> str:
    """The original crate's keyword-driven answer to ``prompt``.

    The echo keeps the first 50 *characters* (the crate sliced bytes and could cut a
    character in half).
    """
    lowered = prompt.lower()
    if any(word in lowered for word in ("challenge", "verify", "critique")):
        return _CHALLENGE
    if any(word in lowered for word in ("research", "explore", "analyze")):
        return _RESEARCH
    if "summarize" in lowered or "summary" in lowered:
        return _SUMMARY
    return (
        f'I understand you\'re asking about: "{prompt[:_ECHO_CHARS]}"\n\n'
        "Here's my response based on the context provided:\n"
        "- The request has been processed\n"
        "- Analysis complete\n"
        "- Ready for further instructions"
    )


class MockProvider(LLMProvider):
    """A provider that answers without a backend.

    ``responses`` cycle in order; with none, answers follow :func:`smart_answer`.
    ``latency`` (seconds) is awaited before each answer. ``error`` is raised instead of
    answering, for the first ``fail_times`` calls (every call when ``fail_times`` is None).
    ``chunk_size`` splits streamed answers into pieces of that many characters.
    :meth:`embed` answers deterministic unit vectors of ``dimensions`` (a request's own
    ``dimensions`` wins) derived from each input's hash, and counts its calls apart.
    """

    def __init__(
        self,
        responses: Sequence[str] = (),
        *,
        latency: float = 0.0,
        error: LLMError | None = None,
        fail_times: int | None = None,
        model: str = "mock",
        chunk_size: int = 8,
        dimensions: int = 8,
    ) -> None:
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of str; use MockProvider.constant(text)")
        self._responses = tuple(responses)
        if not all(isinstance(r, str) for r in self._responses):
            raise TypeError("responses must all be str")
        positive_number("latency", latency, zero=True)
        positive_int("chunk_size", chunk_size)
        self.latency = latency
        self.error = error
        self.fail_times = fail_times
        self.model = model
        self.chunk_size = chunk_size
        positive_int("dimensions", dimensions)
        self.dimensions = dimensions
        #: How many times ``embed`` reached this provider, and how many inputs it embedded.
        self.embed_calls = 0
        self.inputs_embedded = 0
        #: The last embedding request that reached this provider.
        self.last_embedding_request: EmbeddingRequest | None = None
        #: How many times ``complete`` or ``stream`` reached this provider.
        self.calls = 0
        #: The last request that reached this provider (only the last: a long-running demo
        #: must not grow without bound).
        self.last_request: LLMRequest | None = None
        self._next = 0

    @classmethod
    def constant(cls, text: str, **options: object) -> MockProvider:
        """A mock that always answers ``text``."""
        return cls([text], **options)  # type: ignore[arg-type]

    @classmethod
    def smart(cls, **options: object) -> MockProvider:
        """A mock that answers by the original crate's keyword rules."""
        return cls((), **options)  # type: ignore[arg-type]

    def name(self) -> str:
        """``mock:<model>``."""
        return f"mock:{self.model}"

    async def is_available(self) -> bool:
        """Always True: there is no backend to be down."""
        return True

    async def _answer(self, request: LLMRequest) -> str:
        request.validate(self.limits)
        if request.operation is not None:
            raise UnsupportedFeature("operation", "mock", f"it speaks no {request.operation} API")
        self.calls += 1
        self.last_request = request
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.error is not None and (self.fail_times is None or self.calls <= self.fail_times):
            raise self.error
        if not self._responses:
            return smart_answer(request.prompt)
        text = self._responses[self._next % len(self._responses)]
        self._next += 1
        return text

    def _usage(self, request: LLMRequest, text: str) -> Usage:
        # A rough 4-characters-per-token count, like the original crate's estimate.
        prompt_chars = sum(len(m.text) for m in request.conversation())
        return Usage(prompt_tokens=prompt_chars // 4 + 1, completion_tokens=len(text) // 4 + 1)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer ``request`` after the configured latency, or raise the configured error."""
        started = time.perf_counter()
        text = await self._answer(request)
        return LLMResponse(
            content=text,
            model=request.model or self.model,
            usage=self._usage(request, text),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason="stop",
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """Yield the answer in ``chunk_size`` pieces; the last chunk has the usage."""
        text = await self._answer(request)
        model = request.model or self.model
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        for piece in pieces:
            yield Chunk(delta=piece, model=model)
            await asyncio.sleep(0)
        yield Chunk(finish_reason="stop", usage=self._usage(request, text), model=model)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Deterministic vectors (see the class docstring), after the configured latency or
        error; one token per 4 characters (or per token id)."""
        request.validate(self.limits)
        started = time.perf_counter()
        self.embed_calls += 1
        call = self.embed_calls  # this call's number, whatever others start meanwhile
        self.inputs_embedded += len(request.inputs)
        self.last_embedding_request = request
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.error is not None and (self.fail_times is None or call <= self.fail_times):
            raise self.error
        size = request.dimensions or self.dimensions
        tokens = sum(
            len(item) // 4 + 1 if isinstance(item, str) else len(item) for item in request.inputs
        )
        return EmbeddingResponse.of(
            (mock_vector(item, size) for item in request.inputs),
            request.model or self.model,
            tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def mock_vector(item: EmbeddingInput, dimensions: int) -> tuple[float, ...]:
    """The unit vector :class:`MockProvider` answers for ``item``: a function of it alone."""
    seed = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else repr(item).encode()
    raw = b""
    counter = 0
    while len(raw) < 4 * dimensions:
        raw += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    values = [v / 2**31 for v in struct.unpack(f">{dimensions}i", raw[: 4 * dimensions])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)
