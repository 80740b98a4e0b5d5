"""An httpx transport over aiohttp: how the providers' default client reaches the network.

The providers speak httpx (requests, responses, exceptions, the bounded decoder reading
``aiter_raw``); only the bytes on the wire go through aiohttp, whose HTTP parser and writer
are C. On loopback a call through httpx's own transport (httpcore and h11, pure Python) costs
about 0.5 ms, through this one about 0.36 ms, aiohttp alone 0.17 (``benchmarks/http_clients.py``).

Swapping transports must change nothing a provider sees, so the transport holds to this:

- the request httpx built goes out as it is: its headers, names in their case and order, and
  nothing aiohttp would add (``User-Agent``, ``Accept``, ``Accept-Encoding``,
  ``Content-Type``); its URL is not re-quoted;
- the answer comes back raw: no decompression (``_content``'s decoder undoes codings while
  counting bytes, so a gzip bomb stops at the cap), no redirect followed, no cookie kept (one
  client serves every tenant of the proxy);
- failures arrive as the httpx exceptions httpcore raises for them (:func:`mapped`), the
  keep-alive race included (``"Server disconnected without sending a response."``, which
  ``_http.sent`` sends again);
- httpx's per-request timeouts apply: connect, pool (waiting for a connection) and read.
  aiohttp has no write timeout; a stalled write is bounded by the exchange's deadline in
  ``_http``;
- a connection pool like httpx's default: at most 100 connections, idle ones closed after
  5 s; a response head bounded like httpcore's; TLS with httpx's default context (certifi,
  or ``SSL_CERT_FILE``/``SSL_CERT_DIR``);
- error messages are aiohttp's words about the connection (host, port, what broke), never
  the request's headers, where the API key travels.

It reads no proxy settings from the environment: aiohttp would read them, and ``~/.netrc``,
on every request in a worker thread, and by rules other than httpx's (no ``https://`` or SOCKS
proxy, no ``ALL_PROXY``, netrc credentials added to requests). ``default_http_client`` keeps
httpx's own client when the environment names a proxy.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import aiohttp
import httpx
import yarl

__all__ = ["NO_RESPONSE", "AiohttpTransport", "DirectAnswer", "mapped"]

#: httpcore's words for a connection that closed before any response: ``_http.sent`` resends
#: the request on seeing them (the keep-alive race).
NO_RESPONSE = "Server disconnected without sending a response."

# Request headers aiohttp adds by default. httpx's request carries its own of each that it
# sends; the others httpx would not send.
_NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# httpcore reads a response head of up to 100 KiB; aiohttp bounds each line, by default to
# 8 KiB, which a CDN's cookies can pass: the same bound as httpcore's, per line.
_HEAD_BYTES = 100 * 1024
# httpx's default pool (httpx.Limits): 100 connections, idle ones kept 5 s.
_MAX_CONNECTIONS = 100
_KEEPALIVE_EXPIRY = 5.0


def mapped(exc: aiohttp.ClientError, *, answered: bool) -> httpx.TransportError:
    """The httpx exception httpcore raises for what aiohttp reported as ``exc``.

    ``answered`` says whether the response's head had arrived (the failure came while reading
    the body). The message is ``exc``'s, which names the host and what broke, not the request.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connecting, or waiting for the pool
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # no byte within the read timeout
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake, proxy
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectionResetError):
        if not answered:
            # A closed connection fails the request's write or its first read; httpcore
            # ignores the failed write, reads, and says this. So do we: nothing was answered.
            return httpx.RemoteProtocolError(NO_RESPONSE)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return httpx.RemoteProtocolError(f"the body was cut short: {message}")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)  # a body cut short, a malformed head
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientConnectionError):  # reset, broken pipe, ...
        return httpx.ReadError(message)
    return httpx.TransportError(message)


def _client_timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    # aiohttp's ``connect`` spans waiting for a pool slot and connecting: httpx's two together.
    acquire = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    timeout: dict[str, float | None] = request.extensions.get("timeout", {})
    return _client_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool"))


def _body(request: httpx.Request) -> bytes | AsyncIterator[bytes] | None:
    """The request's body for aiohttp: its bytes, or its chunks when it is streamed."""
    try:
        return request.content or None
    except httpx.RequestNotRead:
        pass
    if not isinstance(request.stream, httpx.AsyncByteStream):
        raise RuntimeError("a request with a sync body cannot go through an async client")
    return _chunks(request.stream)


async def _chunks(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body as httpx reads it: the connection goes back to the pool
    once the body was read to its end, and is closed when the body is left half-read (the
    rest would otherwise arrive ahead of the next response)."""

    __slots__ = ("_done", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except aiohttp.ClientError as exc:
            raise mapped(exc, answered=True) from exc
        self._done = True

    async def aclose(self) -> None:
        if self._done or self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


@functools.lru_cache(maxsize=64)  # a provider posts to a handful of URLs
def _yarl(url: str) -> yarl.URL:
    # As httpx encoded it: aiohttp must not quote it again.
    return yarl.URL(url, encoded=True)


class DirectAnswer:
    """An aiohttp response as ``providers._http`` reads an answer: what it uses of an
    ``httpx.Response`` (status, headers, the raw body piece by piece, closing), without
    building one. The body's failures are httpx's exceptions, as through the transport."""

    __slots__ = ("_body", "headers", "status_code")

    #: The body is read from the network, never held whole (``_http`` reads ``aiter_raw``).
    is_stream_consumed = False

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status_code = response.status
        self.headers = httpx.Headers(list(response.raw_headers))
        self._body = _Body(response)

    @property
    def content(self) -> bytes:
        """Never held: read the body with :meth:`aiter_raw`."""
        raise httpx.ResponseNotRead()

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, still encoded (no decompression)."""
        return self._body.__aiter__()

    async def aclose(self) -> None:
        """Release the connection to the pool, or close it when the body was left half-read."""
        await self._body.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending requests through one ``aiohttp.ClientSession``
    (see the module docstring). The session is opened on the first request, inside the
    running event loop, and closed by :meth:`aclose`."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=_MAX_CONNECTIONS,
            keepalive_timeout=_KEEPALIVE_EXPIRY,
            ssl=httpx.create_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NOT_ADDED,
            auto_decompress=False,
            trust_env=False,
            max_line_size=_HEAD_BYTES,
            max_field_size=_HEAD_BYTES,
        )
        return self._session

    async def _send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        data: bytes | AsyncIterator[bytes] | None,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send a request through the session; the response, its body not read yet."""
        session = self._session or self._open()
        try:
            return await session.request(
                method,
                _yarl(url),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=limits,
            )
        except aiohttp.ClientError as exc:
            raise mapped(exc, answered=False) from exc

    async def post(
        self, url: str, headers: list[tuple[str, str]], body: bytes, seconds: float
    ) -> DirectAnswer:
        """POST ``body`` with exactly ``headers`` (aiohttp adds only ``Host``), every httpx
        timeout being ``seconds``; the answer as :class:`DirectAnswer`. No httpx request or
        response is built (see :meth:`vex_llm.providers._client.AiohttpClient.post`)."""
        limits = _client_timeout(seconds, seconds, seconds)
        return DirectAnswer(await self._send("POST", url, headers, body, limits))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response, its body not read yet."""
        headers = [(name.decode(), value.decode()) for name, value in request.headers.raw]
        data = _body(request)
        if data is not None and not isinstance(data, bytes):  # aiohttp frames a stream itself
            headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
        response = await self._send(
            request.method, str(request.url), headers, data, _timeout(request)
        )
        version = response.version
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions={
                "http_version": f"HTTP/{version.major}.{version.minor}".encode()
                if version
                else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
