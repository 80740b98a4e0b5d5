"""HTTP plumbing of the proxy: JSON and error responses, SSE, the capped body reader.

Kept apart from the handlers so that ``app.py`` reads as the request path and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from vex_llm.server.wire import WireError, error_json

try:
    import anyio
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response, StreamingResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the proxy needs the server extra: pip install 'vex-llm[server]'") from exc

log = logging.getLogger("vex_llm.server")

__all__ = [
    "END_OF_RESPONSE",
    "BodyDeadline",
    "ErrorRenderer",
    "OneAuthorization",
    "SSEResponse",
    "cache_headers",
    "error_response",
    "http_error",
    "json_response",
    "read_body",
    "unauthorized",
]


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``obj`` as a JSON response."""
    # ensure_ascii: a lone surrogate in an answer must not make encoding fail.
    body = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def error_response(err: WireError, headers: Mapping[str, str] | None = None) -> Response:
    """``err`` in OpenAI's error shape, with its status."""
    return json_response(err.body(), err.status, headers)


class _End(bytes):
    """The type of :data:`END_OF_RESPONSE`: empty bytes no body yields by accident."""


#: What an :class:`SSEResponse` body yields to end the response there: the client has the
#: whole answer, and the body goes on with its own remaining work (bookkeeping) after.
END_OF_RESPONSE: bytes = _End()


class SSEResponse(StreamingResponse):
    """A streaming response for SSE: it always closes its body, notices a client leaving
    with one asyncio task, and can end the response before its body is done.

    The body may yield :data:`END_OF_RESPONSE` (this very object, tested by identity) to end
    the HTTP response at once; what it does after that (storing the answer, counting it)
    no longer delays the client's last byte.

    The body is closed even when the client left: without that, a disconnect detected by a
    failed ``send`` leaves the generator to the garbage collector, and with it the detaching
    of this subscriber from a shared stream.

    Starlette watches for the client leaving with an anyio task group per response (uvicorn
    declares ASGI 2.3, where ``send`` does not fail once the client is gone); a task group
    costs ~45 µs, a tenth of a stream hit (``benchmarks/proxy.py``). The watch here is one
    plain task that waits on ``receive`` and, if the client leaves before the response is
    complete, cancels the streaming task, which then ends quietly as Starlette's does.
    """

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        super().__init__(body, headers=dict(headers), media_type="text/event-stream")
        self._body = body
        self._over = False  # the response is complete (or being abandoned): no more cancels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streamer = asyncio.current_task()
        assert streamer is not None  # an ASGI app always runs in a task
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass  # the rest of a request body nobody reads
            if not self._over:
                left = True
                streamer.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            # The client left: that ends the response. Any other cancellation goes on.
            if not left or streamer.uncancel() > 0:
                raise
        finally:
            self._over = True
            watcher.cancel()
        if self.background is not None:
            await self.background()

    async def stream_response(self, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._body:
                if self._over:
                    continue  # after END_OF_RESPONSE: the body's own remaining work
                if chunk is END_OF_RESPONSE:
                    self._over = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not self._over:
                self._over = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            # From here on the body is only being closed: a client leaving must not cancel that.
            self._over = True
            closer = getattr(self._body, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True):
                    await closer()


def cache_headers(outcome: str, key: str, age: float | None) -> dict[str, str]:
    """``x-vex-cache``, ``x-vex-cache-key`` and, on hits and stale answers, ``age``."""
    headers = {"x-vex-cache": outcome, "x-vex-cache-key": key}
    if outcome in ("hit", "stale") and age is not None:
        headers["age"] = str(int(age))
    return headers


async def read_body(request: Request, cap: int) -> bytes:
    """The request body, or a 413 ``WireError`` once it is over ``cap`` bytes."""
    too_large = WireError(
        f"request body is larger than the limit of {cap} bytes",
        status=413,
        code="request_too_large",
    )
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isascii() or not length.strip().isdigit():
            raise WireError("Content-Length is not a number", param="Content-Length")
        if int(length) > cap:
            raise too_large
    parts = []
    total = 0
    # Counted while reading: a chunked or lying body cannot get past the cap either.
    try:
        async for part in request.stream():
            total += len(part)
            if total > cap:
                raise too_large
            parts.append(part)
    except ClientDisconnect:
        # The client left (or BodyDeadline gave up on it): one line, not a traceback. The
        # status is for the metrics only; nobody is left to read it.
        log.info("request body incomplete: the client left or was too slow (%d bytes)", total)
        raise WireError(
            "the request body was not received in full", status=499, code="client_closed"
        ) from None
    return b"".join(parts)


def unauthorized(message: str = "invalid or missing API key") -> WireError:
    """A 401 in OpenAI's shape."""
    return WireError(message, status=401, type="authentication_error", code="invalid_api_key")


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return json_response(error_json(str(detail), kind if status < 500 else "server_error"), status)


_CREDENTIAL_HEADERS = {b"authorization": "Authorization", b"x-api-key": "x-api-key"}

#: How a middleware writes a refusal for the request at ``path``: in the shape of the door
#: the client called (Anthropic's SDK cannot read OpenAI's error shape), OpenAI's by default.
ErrorRenderer = Callable[[str, WireError, Mapping[str, str]], Response]


def _openai_error(path: str, err: WireError, headers: Mapping[str, str]) -> Response:
    return error_response(err, headers)


class OneAuthorization:
    """ASGI middleware: a request with more than one credential header (``Authorization``, or
    ``x-api-key``, which Anthropic's clients send) is refused (400) before any handler sees
    it. Picking one of them would let a client and whatever sits in front of the proxy
    disagree on who is asking."""

    def __init__(self, app: ASGIApp, render: ErrorRenderer = _openai_error) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen: set[bytes] = set()
            for name, _ in scope["headers"]:
                if name not in _CREDENTIAL_HEADERS:
                    continue
                if name in seen:
                    header = _CREDENTIAL_HEADERS[name]
                    err = WireError(
                        f"more than one {header} header; send exactly one",
                        param=header,
                        status=400,
                    )
                    response = self.render(scope["path"], err, {"connection": "close"})
                    await response(scope, receive, send)
                    return
                seen.add(name)
        await self.app(scope, receive, send)


class BodyDeadline:
    """ASGI middleware: the request body must arrive within ``timeout`` seconds of the request's
    start, or the client gets a 408 (``connection: close``) and the handler a disconnect.

    Only reads of the body are bounded; once it is complete, ``receive`` is passed through
    untouched (a streaming response waits on it to notice a client leaving).
    """

    def __init__(self, app: ASGIApp, timeout: float, render: ErrorRenderer = _openai_error) -> None:
        self.app = app
        self.timeout = timeout
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.timeout
        body_done = False
        started = timed_out = False

        async def bounded_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            with anyio.move_on_after(deadline - anyio.current_time()) as scope_:
                message = await receive()
            if scope_.cancelled_caught:
                if not started and not timed_out:
                    timed_out = True
                    err = WireError(
                        f"the request body did not arrive within {self.timeout:g} s",
                        status=408,
                        code="request_timeout",
                    )
                    refusal = self.render(scope["path"], err, {"connection": "close"})
                    await refusal(scope, receive, send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:  # the 408 went out instead
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)
