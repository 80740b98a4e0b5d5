"""The providers' default HTTP client: httpx, whose requests leave in one write.

httpx (through httpcore and h11) writes a request's head and its body in two calls. Each is a
``send`` system call and a wake-up of the upstream for a request it cannot answer yet; on
loopback (the local model, a sidecar) or a fast LAN that is a visible share of a call
(``benchmarks/proxy.py``: the provider alone, about 0.2 ms of 0.8). So the connections of the
default client hold what is written until the first read, and send it in one write: httpcore
reads only once the request is complete. A write that fails there is handled as httpcore
handles a failed request write: the response is read anyway (a server may answer and close
before reading a whole request), and reading reports what went wrong.

It keeps no cookies. One client serves every tenant of the proxy, so a cookie an upstream
sets while answering one tenant (a CDN's bot-management cookie, a session) would go back
with the next tenant's request: state shared across tenants that nobody asked for. An API
answers a request by its key, never by a cookie (:class:`NoCookies`).

Everything else is httpx's default client, unchanged: proxies from the environment, TLS,
limits, timeouts. Only its direct connections are wrapped, by wrapping the network backend of
httpx's default transport (an attribute httpcore does not document, ``_network_backend``): if
a future httpx or httpcore lays it out otherwise, the client is httpx's default as it comes.
A client passed in as ``http_client=`` is used as it is.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["NoCookies", "OneWriteBackend", "OneWriteStream", "default_http_client"]


class NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing and sends nothing (see the module docstring)."""

    def extract_cookies(self, response: Any, request: urllib.request.Request) -> None:
        """Ignore the answer's ``Set-Cookie`` headers."""

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        """Keep nothing."""

    def add_cookie_header(self, request: urllib.request.Request) -> None:
        """Send nothing."""


class OneWriteStream(httpcore.AsyncNetworkStream):
    """A connection whose writes are held until the next read, then sent as one."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []

    # The signatures are httpcore's (``timeout`` in seconds): noqa ASYNC109 below.
    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Hold ``buffer`` until the next read."""
        if buffer:
            self._held.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """Send what is held, then read."""
        held = self._held
        if held:
            data = held[0] if len(held) == 1 else b"".join(held)
            held.clear()
            # As httpcore does with a failed request write: the read below says what happened.
            with contextlib.suppress(httpcore.WriteError):
                await self._stream.write(data, timeout)
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        """Close the connection (what is held was never asked for: it is dropped)."""
        self._held.clear()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS; the TLS stream holds its writes too."""
        stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return OneWriteStream(stream)

    def get_extra_info(self, info: str) -> Any:
        """The wrapped connection's extra info."""
        return self._stream.get_extra_info(info)


class OneWriteBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend ``backend`` whose connections are :class:`OneWriteStream`."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A TCP connection whose request writes leave as one."""
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return OneWriteStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A Unix socket connection whose request writes leave as one."""
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return OneWriteStream(stream)

    async def sleep(self, seconds: float) -> None:
        """The wrapped backend's sleep."""
        await self._backend.sleep(seconds)


def default_http_client() -> httpx.AsyncClient:
    """httpx's default ``AsyncClient``, its direct connections writing each request once,
    keeping no cookies."""
    client = httpx.AsyncClient(cookies=NoCookies())
    pool = getattr(client._transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(
        backend, httpcore.AsyncNetworkBackend
    ):
        pool._network_backend = OneWriteBackend(backend)
    return client
