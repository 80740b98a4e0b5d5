"""The HTTP/1.1 protocol the proxy serves with: uvicorn's httptools protocol, bounded.

uvicorn (checked against 0.54) offers a keep-alive idle timeout (``timeout_keep_alive``) and
``limit_concurrency`` (a plain-text 503 that counts tasks as well as connections), but on its
httptools protocol no cap on header size (h11's ``h11_max_incomplete_event_size`` applies to
h11 only) and no timeout at all for a connection that sends nothing, or sends its headers a
byte at a time. This subclass adds, from :class:`~vex_llm.server.limits.ServerLimits`:

- ``max_header_bytes``: counted as the head arrives, so a 64 MB header line is refused after
  the first 32 KiB, not buffered whole: 431, connection closed;
- ``header_timeout``: from a connection's start (or a kept-alive request's first byte) to the
  end of its headers: 408, or a silent close for a connection that sent nothing;
- ``max_connections``: a request on a connection past the limit gets 503 (and ``connection:
  close``), so idle or slow clients cannot take every file descriptor; the header timeout
  reaps the ones that never send a request;
- ``write_timeout``: a client that stops reading while the proxy's send buffer is full is
  dropped after that long (uvicorn would keep its task and buffered answer forever);

and answers uvicorn's own refusals (an unparseable request: 400) in OpenAI's error shape.
Its writes go through :class:`~vex_llm.server.coalescing.CoalescingTransport`, so a response's
head and body leave in one write.
The body timeout is :class:`~vex_llm.server.http.BodyDeadline` (it needs the ASGI cycle).
"""

from __future__ import annotations

import asyncio
import http
import json
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vex_llm.server.coalescing import CoalescingTransport
from vex_llm.server.http import error_response
from vex_llm.server.limits import ServerLimits
from vex_llm.server.wire import WireError, error_json

__all__ = ["bounded_protocol", "refusal"]

#: How long a refused connection is drained before it is closed anyway.
_LINGER_SECONDS = 2.0


def refusal(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 error response in OpenAI's shape that closes the connection."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = json.dumps(error_json(message, kind, None, code), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_BUSY = error_response(
    WireError(
        "too many connections to the proxy; retry shortly",
        status=503,
        type="server_error",
        code="overloaded",
    ),
    {"connection": "close"},
)


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (``limits`` is set per subclass)."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A response's head and body leave in one write (see CoalescingTransport).
        super().connection_made(CoalescingTransport(transport, self.loop))
        self._in_head = True  # waiting for (the rest of) a request's headers
        self._head_bytes = 0
        self._heads = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._start_head_timer()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes == 0:
            self.transport.close()  # a connection that never sent a byte: nobody to tell
            return
        message = f"the request headers did not arrive within {self.limits.header_timeout:g} s"
        self._refuse(408, message, "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._refused = True
        self._stop_head_timer()
        self.transport.write(refusal(status, message, code))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # A lingering close: closing with the client's bytes still unread would make the
        # kernel reset the connection, and the client lose the answer. So: send the answer
        # and a FIN, discard what still comes, and close when the client does (or soon).
        self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        in_head, heads = self._in_head, self._heads
        if in_head and self._head_timer is None:  # a kept-alive connection's next request
            self._start_head_timer()
        super().data_received(data)
        if not in_head or self._heads != heads or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            message = f"the request line and headers are larger than the limit of {limit} bytes"
            self._refuse(431, message, "headers_too_large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._head_bytes = 0
        self._stop_head_timer()
        if len(self.connections) <= self.limits.max_connections:
            super().on_headers_complete()
            return
        self.logger.warning("too many connections (%d): answered 503", len(self.connections))
        app, self.app = self.app, _BUSY
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        # A lone response leaves now rather than at the end of the loop step: the handler's
        # work after it (counting the answer, a stream's answer being stored) must not delay
        # the client's last byte. With other requests in hand, the step's writes still go
        # together at its end: sending each at once wakes each client mid-step, and on two
        # cores that cost a fifth of the hits per second (16 connections, benchmarks/proxy.py).
        transport = self.transport
        if len(self.tasks) <= 1 and isinstance(transport, CoalescingTransport):
            transport.flush()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def pause_writing(self) -> None:
        # The client stopped reading and our send buffer is full: it has write_timeout to
        # start reading again, or the connection is dropped (its task and buffers with it).
        super().pause_writing()
        if self._write_timer is None:
            timeout = self.limits.write_timeout
            self._write_timer = self.loop.call_later(timeout, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_write_timer()

    def _stop_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_stalled(self) -> None:
        self._write_timer = None
        self.logger.info(
            "a client read nothing for %g s: connection dropped", self.limits.write_timeout
        )
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_write_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"malformed HTTP request: {msg}", "bad_http_request")


def bounded_protocol(limits: ServerLimits) -> type[BoundedProtocol]:
    """A protocol class for uvicorn's ``Config(http=...)`` that applies ``limits``."""
    return type("BoundedProtocol", (BoundedProtocol,), {"limits": limits})
