"""The providers' default HTTP client: httpx over aiohttp, or httpx writing each request once.

:func:`default_http_client` is an :class:`AiohttpClient`: httpx's ``AsyncClient`` whose
transport is aiohttp (``_aiohttp``), with a :meth:`~AiohttpClient.post_json` that
``_http.sent`` uses to skip httpx's request and response objects and the client layers
this client has no use for. On loopback the aiohttp transport and the layers skipped took
the proxy's miss overhead from 1.22 to 0.77 ms (``benchmarks/proxy.py``). When aiohttp
is missing, or the environment names a proxy (whose rules httpx's own client follows, see
``_aiohttp``), it is :func:`one_write_http_client`.

That one is httpx's default client whose requests leave in one write. httpx (through httpcore
and h11) writes a request's head and its body in two calls. Each is a ``send`` system call
and a wake-up of the upstream for a request it cannot answer yet; on loopback (the local
model, a sidecar) or a fast LAN that is a visible share of a call. So its connections hold
what is written until the first read, and send it in one write: httpcore reads only once the
request is complete. A write that fails there is handled as httpcore handles a failed request
write: the response is read anyway (a server may answer and close before reading a whole
request), and reading reports what went wrong.

Neither keeps cookies. One client serves every tenant of the proxy, so a cookie an upstream
sets while answering one tenant (a CDN's bot-management cookie, a session) would go back
with the next tenant's request: state shared across tenants that nobody asked for. An API
answers a request by its key, never by a cookie (:class:`NoCookies`).

Everything else is httpx's default client, unchanged: proxies from the environment, TLS,
limits, timeouts. The one-write client wraps only its direct connections, by wrapping the
network backend of httpx's default transport (an attribute httpcore does not document,
``_network_backend``): if a future httpx or httpcore lays it out otherwise, the client is
httpx's default as it comes. A client passed in as ``http_client=`` is used as it is,
through ``client.send``.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import urllib.request
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

if TYPE_CHECKING:
    from vex_llm.providers._aiohttp import DirectAnswer

__all__ = [
    "AiohttpClient",
    "NoCookies",
    "OneWriteBackend",
    "OneWriteStream",
    "default_http_client",
    "one_write_http_client",
]


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


_JSON = "application/json"


class AiohttpClient(httpx.AsyncClient):
    """httpx's ``AsyncClient`` over the aiohttp transport, with :meth:`post_json`."""

    async def post_json(
        self, url: httpx.URL, payload: Any, headers: Mapping[str, str], seconds: float
    ) -> DirectAnswer | httpx.Response:
        """POST ``payload`` as JSON to ``url`` with ``headers``, every timeout ``seconds``:
        the answer, its body unread.

        The request is the one ``build_request`` would make, byte for byte — the client's
        headers less those ``headers`` names again, then ``headers``, ``Host`` first,
        ``Content-Length`` and ``Content-Type`` last, the JSON compact and UTF-8 — sent
        through aiohttp without
        building it: httpx's request (URL merging, header normalising, cookies) and response
        objects cost ~50 µs a call, a tenth of a proxy's miss (``benchmarks/proxy.py``).
        The client's own layers (auth, redirects, event hooks, the request log line,
        ``response.elapsed``) are skipped too: this client uses none of them. Should any be
        set on it after all, the request goes through ``send`` as it would anywhere else.
        """
        from vex_llm.providers._aiohttp import AiohttpTransport  # with aiohttp, or no such client

        transport = self._transport
        if (
            self.auth is not None
            or self.follow_redirects
            or any(self.event_hooks.values())
            or not isinstance(transport, AiohttpTransport)
        ):
            request = self.build_request(
                "POST", url, json=payload, headers=headers, timeout=seconds
            )
            return await self.send(request, stream=True)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        # httpx's JSON body: compact, UTF-8, NaN refused.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        data = body.encode("utf-8")
        # As Headers.update merges them: the client's, less those named again, then these.
        given = {name.lower() for name in headers}
        items = [
            (name.decode(), value.decode())
            for name, value in self.headers.raw
            if name.decode().lower() not in given
        ]
        items += headers.items()
        named = given.union(name.lower() for name, _ in items)
        for name, value in (("Content-Length", str(len(data))), ("Content-Type", _JSON)):
            if name.lower() not in named:
                items.append((name, value))
        if "host" not in named:
            items.insert(0, ("Host", url.netloc.decode("ascii")))
        return await transport.post(str(url), items, data, seconds)


def _proxied() -> bool:
    """True when the environment names a proxy httpx would use (read as httpx reads it)."""
    found = urllib.request.getproxies()
    if any(host.strip() == "*" for host in found.get("no", "").split(",")):
        return False  # NO_PROXY=*: httpx ignores every proxy
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


def default_http_client() -> httpx.AsyncClient:
    """The providers' default client: an :class:`AiohttpClient` keeping no cookies, or, when
    aiohttp is missing or the environment names a proxy, :func:`one_write_http_client`."""
    if not _proxied():
        try:
            from vex_llm.providers._aiohttp import AiohttpTransport
        except ImportError:  # a dependency, but an install may have been trimmed
            pass
        else:
            return AiohttpClient(transport=AiohttpTransport(), cookies=NoCookies())
    return one_write_http_client()


def one_write_http_client() -> httpx.AsyncClient:
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
