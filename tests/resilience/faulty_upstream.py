"""A fault-injecting fake upstream (OpenAI chat completions) whose behaviour a test switches.

Modes: ``ok``; ``flaky`` (each call fails with a 5xx at ``error_rate``, from a seeded
random source, so a run is reproducible); ``hung`` (never answers until ``release()``);
``down`` (every call 503: a hard outage). ``burst_429(n, retry_after)`` makes the next ``n``
calls 429 with that ``Retry-After`` whatever the mode; ``cut_after_first`` streams one
chunk and then drops the connection. Answers are ``"<tag>: <prompt>"``, so a test can tell a
fresh answer from a stored one by changing ``tag``. Shared by the tests and
``benchmarks/resilience.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class CutStream(Exception):
    """Raised inside a streaming body: uvicorn drops the connection mid-response."""


class FaultyUpstream:
    """The fake's state and switches; ``calls`` counts requests by what they got."""

    def __init__(self, *, seed: int = 13, error_rate: float = 0.3, tag: str = "v1") -> None:
        self.mode = "ok"
        self.error_rate = error_rate
        self.tag = tag
        self.latency = 0.0
        self.cut_after_first = False
        #: The Retry-After sent with the 503s of ``down`` (None: none).
        self.down_retry_after: str | None = None
        #: Set whenever a 5xx has been answered (a handshake for tests).
        self.failed = asyncio.Event()
        self.calls: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._burst: list[str] = []
        self._released = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    @property
    def total(self) -> int:
        """Every request that reached the fake."""
        return sum(self.calls.values())

    def burst_429(self, n: int, retry_after: str) -> None:
        """The next ``n`` calls get 429 with ``Retry-After: retry_after``."""
        self._burst = [retry_after] * n

    def release(self) -> None:
        """Let every hung call go (they answer 503)."""
        self._released.set()

    async def models(self, request: Request) -> Response:
        if self.mode in ("down", "hung"):
            return JSONResponse({"error": {"message": "down"}}, 503)
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        doc = await request.json()
        if self._burst:
            self.calls["429"] += 1
            retry_after = self._burst.pop()
            return JSONResponse(
                {"error": {"message": "slow down"}}, 429, headers={"retry-after": retry_after}
            )
        if self.mode == "hung":
            self.calls["hung"] += 1
            await self._released.wait()
            return JSONResponse({"error": {"message": "gave up"}}, 503)
        if self.mode == "down" or (self.mode == "flaky" and self._rng.random() < self.error_rate):
            self.calls["5xx"] += 1
            self.failed.set()
            headers = {}
            if self.mode == "down" and self.down_retry_after is not None:
                headers["retry-after"] = self.down_retry_after
            return JSONResponse({"error": {"message": "upstream overloaded"}}, 503, headers=headers)
        self.calls["ok"] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = f"{self.tag}: {doc['messages'][-1]['content']}"
        model = doc.get("model", "fake")
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if doc.get("stream"):
            return StreamingResponse(
                self._events(answer, model, usage, self.cut_after_first),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _events(
        self, answer: str, model: str, usage: dict[str, int], cut: bool
    ) -> AsyncIterator[bytes]:
        half = max(1, len(answer) // 2)
        yield _sse(model, {"role": "assistant", "content": answer[:half]})
        await asyncio.sleep(0.01)
        if cut:
            raise CutStream("the upstream died mid-stream")
        yield _sse(model, {"content": answer[half:]})
        yield _sse(model, {}, finish_reason="stop", usage=usage)
        yield b"data: [DONE]\n\n"


def _sse(
    model: str, delta: dict[str, Any], finish_reason: str | None = None, usage: Any = None
) -> bytes:
    doc: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        doc["usage"] = usage
    return b"data: " + json.dumps(doc).encode() + b"\n\n"
