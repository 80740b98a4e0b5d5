"""A fake upstream speaking OpenAI's chat-completions wire format, with faults on demand.

The last user message picks the behaviour, so one server serves a whole test:
``fault:429`` answers 429 with ``Retry-After: 120``; ``fault:500`` a 500 whose body echoes the
Authorization header it got (as a careless upstream might); ``fault:echo`` answers *successfully*
with that header in the text (JSON or streamed, cut across chunks); ``fault:slow`` waits
two seconds; ``fault:bomb`` answers 20 kB of gzip that inflate to 20 MB; ``fault:cut``
streams two chunks then drops the connection; anything else is
answered ``echo: <text>`` (streamed in three pieces when asked to stream).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class CutStream(Exception):
    """Raised inside a streaming body: uvicorn drops the connection mid-response."""


class FakeUpstream:
    """The fake's state: the requests it saw (``calls``) and the Authorization headers."""

    def __init__(self) -> None:
        self.calls = 0
        self.authorizations: list[str | None] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        self.calls += 1
        self.authorizations.append(request.headers.get("authorization"))
        doc = await request.json()
        text = doc["messages"][-1]["content"]
        model = doc.get("model", "fake")
        if text == "fault:429":
            return JSONResponse(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                429,
                headers={"retry-after": "120"},
            )
        if text == "fault:500":
            # A careless upstream that echoes the caller's credentials in its error body.
            echo = request.headers.get("authorization")
            return JSONResponse({"error": {"message": f"boom ({echo})", "type": "server"}}, 500)
        if text == "fault:bomb":
            # 20 kB of gzip that inflates to 20 MB: a client that inflates first is sunk.
            return Response(
                _bomb(), headers={"content-encoding": "gzip", "content-type": "application/json"}
            )
        if text == "fault:slow":
            await asyncio.sleep(2)
        answer = f"echo: {text}"
        if text == "fault:echo":
            answer = f"echo: {request.headers.get('authorization')} !"
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if not doc.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
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
        return StreamingResponse(
            self._events(answer, model, usage, cut=text == "fault:cut"),
            media_type="text/event-stream",
        )

    async def _events(
        self, answer: str, model: str, usage: dict[str, int], cut: bool
    ) -> AsyncIterator[bytes]:
        third = max(1, len(answer) // 3)
        pieces = [answer[:third], answer[third : 2 * third], answer[2 * third :]]
        for i, piece in enumerate(pieces):
            if cut and i == 2:
                raise CutStream("the upstream died mid-stream")
            yield _sse(model, {"content": piece} if i else {"role": "assistant", "content": piece})
            await asyncio.sleep(0.01)
        yield _sse(model, {}, finish_reason="stop", usage=usage)
        yield b"data: [DONE]\n\n"


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(b'{"choices":[{"message":{"content":"' + b"x" * 20_000_000 + b'"}}]}')


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
