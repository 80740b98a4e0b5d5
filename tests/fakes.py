"""A loopback HTTP/1.1 server for provider tests, on raw asyncio streams.

Each test gives it a handler that turns the recorded request into a :class:`Reply`: a status,
headers and a body as pieces, where a float piece is a pause. The body is sent with chunked
transfer encoding (as real SSE/NDJSON streams are), and ``complete=False`` drops the
connection without the terminating chunk, the way a crashed backend does. Raw sockets give
the control a framework would hide: trickled bytes, cut streams, exact wire bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Error"}


@dataclass
class Recorded:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer: status, headers, body pieces (bytes, or float seconds to pause)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes | float] = field(default_factory=list)
    complete: bool = True


Handler = Callable[[Recorded], Reply | Awaitable[Reply]]


def sse(*events: Any, event_names: list[str] | None = None) -> list[bytes | float]:
    """SSE body pieces: each event a ``data:`` line (dicts as JSON), one piece per event."""
    pieces: list[bytes | float] = []
    for i, data in enumerate(events):
        text = data if isinstance(data, str) else json.dumps(data)
        name = f"event: {event_names[i]}\n" if event_names else ""
        pieces.append(f"{name}data: {text}\n\n".encode())
    return pieces


def ndjson(*docs: Any) -> list[bytes | float]:
    """NDJSON body pieces, one line per piece."""
    return [(json.dumps(doc) + "\n").encode() for doc in docs]


def json_reply(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer."""
    return Reply(
        status, {"content-type": "application/json", **(headers or {})}, [json.dumps(doc).encode()]
    )


class LoopbackServer:
    """``async with LoopbackServer(handler) as server:``; ``server.url``, ``server.requests``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what some tests do
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        recorded = Recorded(method, path, headers, body)
        self.requests.append(recorded)
        reply = self.handler(recorded)
        if not isinstance(reply, Reply):
            reply = await reply
        status_line = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
        out_headers = {"transfer-encoding": "chunked", "connection": "close", **reply.headers}
        writer.write(
            (
                status_line + "".join(f"{k}: {v}\r\n" for k, v in out_headers.items()) + "\r\n"
            ).encode()
        )
        await writer.drain()
        for piece in reply.body:
            if isinstance(piece, float):
                await asyncio.sleep(piece)
                continue
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        if reply.complete:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
