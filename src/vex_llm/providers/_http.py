"""The HTTP boundary shared by the real providers: client ownership, error mapping, line parsing.

Everything a backend can do wrong over HTTP is turned into the ``vex_llm.errors`` tree here,
in one place: status codes (:func:`error_for_status`), transport failures and the overall
deadline (:func:`mapped_errors`), and malformed bodies (:func:`parse_json`). The parsers for
streamed bodies (:class:`SSEDecoder`, :func:`parse_json`) are pure and tested without I/O.

The request timeout covers the *whole* exchange, body and stream included: callers compute
one deadline with :func:`deadline_after` and wrap every await on the network in
``asyncio.timeout_at(deadline)``. httpx's own timeouts only bound each read, so a server
trickling a byte a second would otherwise never time out.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, aclosing, contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import httpx

from vex_llm.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InvalidResponse,
    LLMError,
    RateLimited,
    RequestFailed,
    ServerError,
    Timeout,
)
from vex_llm.models import Chunk

__all__ = [
    "HTTPClientOwner",
    "LineSplitter",
    "SSEDecoder",
    "SSEEvent",
    "check_timeout",
    "deadline_after",
    "error_for_status",
    "mapped_errors",
    "normalise_base_url",
    "parse_json",
    "parse_retry_after",
    "post_json",
    "probe",
    "raise_for_status",
    "read_error_body",
    "redact",
    "sse_events",
    "stream_lines",
]

# How much of an error body is read: enough for a human to see the complaint, bounded so a
# misbehaving server cannot make us buffer megabytes on the error path.
_ERROR_BODY_BYTES = 4096
_REDACTED = "[redacted]"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``[redacted]``.

    Backends sometimes echo (part of) a rejected key in their error body; that body ends up
    in an exception message and so in logs.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or unusable.

    The value is either delta-seconds (``"120"``, fractions tolerated) or an HTTP date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is measured from ``now`` (epoch seconds).
    A date in the past means "now": 0.0. Garbage, negatives and non-finite numbers give None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(delay) or delay < 0:
        return None
    return delay


def error_for_status(
    status: int,
    body: str,
    retry_after: str | None = None,
    *,
    now: float | None = None,
) -> LLMError | None:
    """The typed error for an HTTP status, or None for a success (2xx/3xx).

    401/403 -> ``AuthenticationFailed``; 429 -> ``RateLimited`` with ``Retry-After`` parsed;
    other 4xx -> ``RequestFailed``; 5xx -> ``ServerError`` (both with a body excerpt).
    """
    if status < 400:
        return None
    excerpt = " ".join(body.split())[:200]
    if status in (401, 403):
        return AuthenticationFailed(f"HTTP {status}: credentials rejected: {excerpt}")
    if status == 429:
        delay = parse_retry_after(retry_after, time.time() if now is None else now)
        return RateLimited(f"HTTP 429: rate limited: {excerpt}", retry_after=delay)
    if status >= 500:
        return ServerError(status, excerpt)
    return RequestFailed(status, excerpt)


async def read_error_body(response: httpx.Response) -> str:
    """At most the first 4 KiB of a (streamed) response body, decoded leniently."""
    data = bytearray()
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) >= _ERROR_BODY_BYTES:
            break
    return bytes(data[:_ERROR_BODY_BYTES]).decode("utf-8", "replace")


def deadline_after(timeout: float) -> float:
    """The event-loop time at which a ``timeout``-second exchange must be over."""
    return asyncio.get_running_loop().time() + timeout


@contextmanager
def mapped_errors(what: str, timeout: float, secrets: tuple[str, ...] = ()) -> Iterator[None]:
    """Turn transport failures inside the block into the ``LLMError`` tree.

    ``TimeoutError`` (the overall deadline) and httpx timeouts -> ``Timeout``; failing to
    connect -> ``ConnectionFailed``; the connection dropping mid-body -> ``InvalidResponse``
    (the answer was cut short). ``LLMError`` passes through. ``what`` names the call in
    messages; ``secrets`` are scrubbed from them.
    """
    try:
        yield
    except LLMError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise Timeout(f"{what}: no complete response within {timeout:g} s") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        raise ConnectionFailed(redact(f"{what}: cannot connect: {exc}", secrets)) from exc
    except httpx.RemoteProtocolError as exc:
        raise InvalidResponse(redact(f"{what}: response cut short: {exc}", secrets)) from exc
    except httpx.TransportError as exc:
        raise ConnectionFailed(redact(f"{what}: transport failed: {exc}", secrets)) from exc
    except httpx.DecodingError as exc:
        raise InvalidResponse(redact(f"{what}: undecodable body: {exc}", secrets)) from exc


def parse_json(text: str | bytes, what: str) -> dict[str, Any]:
    """A JSON object from ``text``; ``InvalidResponse`` for anything else."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResponse(f"{what}: body is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event: its ``event`` name ("message" by default) and ``data``."""

    event: str
    data: str


class SSEDecoder:
    """Incremental Server-Sent Events parser: feed it lines, get whole events.

    Follows the WHATWG rules that matter for LLM APIs: ``data:`` lines accumulate (joined by
    newlines), one leading space after the colon is dropped, ``:`` lines are comments, and a
    blank line dispatches the event. An event cut off by the end of the stream is dropped, as
    the spec requires, so a truncated stream cannot pass a half event off as whole.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Consume one line (without its line ending); return an event when one is complete."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


async def sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[SSEEvent, None]:
    """The events of an SSE body given as lines."""
    decoder = SSEDecoder()
    async for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event


#: What ``str.splitlines`` (and so httpx's ``aiter_lines``) treats as a line end.
_LINE_ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


class LineSplitter:
    """Incremental ``str.splitlines``: feed it text as it arrives, get the complete lines.

    A ``\r`` at the end of a piece is held back, since a ``\n`` starting the next piece makes
    the two one line end. :meth:`flush` returns what is left once the text is over.
    """

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._cr = False

    def feed(self, text: str) -> list[str]:
        """The lines that ``text`` completes (without their line ends)."""
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            self._cr = True
            text = text[:-1]
        if not text:
            return []
        ends_a_line = text[-1] in _LINE_ENDS
        lines = text.splitlines()
        if self._partial:
            lines[0] = "".join(self._partial) + lines[0]
            self._partial = []
        if not ends_a_line:
            self._partial.append(lines.pop())
        return lines

    def flush(self) -> list[str]:
        """The last line when the text did not end with a line end (or ended with ``\r``)."""
        if not self._partial and not self._cr:
            return []
        line = "".join(self._partial)
        self._partial, self._cr = [], False
        return [line]


class HTTPClientOwner:
    """Holds the ``httpx.AsyncClient`` a provider talks through.

    A client passed in belongs to the caller (shared connection pools, test transports) and is
    never closed here; a client created here is closed by :meth:`aclose`. The client is made
    lazily so that a provider can be built outside an event loop.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise TypeError(
                f"http_client must be an httpx.AsyncClient, not {type(client).__name__}"
            )
        self._client = client
        self._owned = client is None
        self._factory = factory or httpx.AsyncClient
        self._closed = False

    @property
    def client(self) -> httpx.AsyncClient:
        """The client (created on first use when none was given)."""
        if self._closed:
            raise RuntimeError("this provider was closed; create a new one")
        if self._client is None:
            self._client = self._factory()
        return self._client

    @property
    def owned(self) -> bool:
        """True when the client was created here and is closed by :meth:`aclose`."""
        return self._owned

    async def aclose(self) -> None:
        """Close the client if it is owned. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned and self._client is not None:
            await self._client.aclose()


def normalise_base_url(base_url: str) -> str:
    """``base_url`` with a lower-case scheme and host and no trailing slash.

    ``ValueError`` unless it is an absolute http(s) URL; credentials in the URL are refused,
    since the base URL appears in names, logs and cache identities.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    try:
        url = httpx.URL(base_url.strip())
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from exc
    if url.userinfo:  # checked first: the other errors echo the URL
        raise ValueError("base_url must not carry credentials; pass api_key instead")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if url.query or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    # httpx already lower-cases the scheme and host and drops a default port.
    return str(url.copy_with(path=url.path.rstrip("/") or "/")).rstrip("/")


def check_timeout(timeout: object) -> float:
    """A provider's default timeout: a positive, finite number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be seconds (a number), not {type(timeout).__name__}")
    value = float(timeout)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
    return value


async def raise_for_status(response: httpx.Response, secrets: tuple[str, ...] = ()) -> None:
    """Raise the typed error for a non-2xx ``response`` (reading a bounded body excerpt)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = redact(await read_error_body(response), secrets)
    error = error_for_status(status, body, response.headers.get("retry-after"))
    # httpx does not follow redirects unless asked; a 1xx/3xx here is no answer at all.
    raise error or InvalidResponse(f"unexpected HTTP {status} from the backend")


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    payload: dict[str, Any],
    time_limit: float,
    what: str,
    secrets: tuple[str, ...] = (),
    on_headers: Callable[[httpx.Headers], None] | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON and return the JSON object answered, all within ``time_limit``.

    ``on_headers`` is handed the response headers of a successful answer.
    """
    with mapped_errors(what, time_limit, secrets):
        request = client.stream("POST", url, json=payload, headers=headers, timeout=time_limit)
        async with asyncio.timeout(time_limit), request as response:
            await raise_for_status(response, secrets)
            if on_headers is not None:
                on_headers(response.headers)
            body = await response.aread()
    return parse_json(body, what)


async def stream_lines(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    payload: dict[str, Any],
    time_limit: float,
    what: str,
    secrets: tuple[str, ...] = (),
    on_headers: Callable[[httpx.Headers], None] | None = None,
) -> AsyncGenerator[str, None]:
    """POST ``payload`` and yield the response body line by line as it arrives.

    ``on_headers`` is handed the response headers of a successful answer, before any line.

    One deadline bounds the whole exchange; each network wait is wrapped in it separately
    because an ``asyncio.timeout`` must not span the ``yield`` (it would cancel whatever the
    consumer happens to be awaiting when it fires).
    """
    deadline = deadline_after(time_limit)
    with mapped_errors(what, time_limit, secrets):
        async with AsyncExitStack() as stack:
            async with asyncio.timeout_at(deadline):
                response = await stack.enter_async_context(
                    client.stream("POST", url, json=payload, headers=headers, timeout=time_limit)
                )
                await raise_for_status(response, secrets)
                if on_headers is not None:
                    on_headers(response.headers)
            # Timed per network read, not per line: one read often carries many lines, and
            # entering a timeout costs a timer handle each time.
            texts = response.aiter_text()
            splitter = LineSplitter()
            while True:
                async with asyncio.timeout_at(deadline):
                    text = await anext(texts, None)
                if text is None:
                    for line in splitter.flush():
                        yield line
                    return
                for line in splitter.feed(text):
                    yield line


#: How long a finished stream may take to end its body before the connection is dropped.
DRAIN_GRACE = 0.25


async def drain(lines: AsyncIterator[str], grace: float = DRAIN_GRACE) -> None:
    """Read the rest of a stream whose terminal event has arrived, so that httpx can put its
    connection back in the pool (closing a half-read response closes the connection, and the
    next request pays for a new one). The answer is already complete: a backend that keeps
    talking, stalls or breaks off here costs only the connection, never the answer.

    Providers call it *before* yielding their terminal chunk: most consumers (``CachedProvider``
    among them) stop iterating at that chunk and close the stream, so a drain placed after it
    would never run. Normally the body ends right after the terminal event and this returns
    at once.
    """
    try:
        async with asyncio.timeout(grace):
            async for _ in lines:
                pass
    except (TimeoutError, LLMError):
        pass


class StreamDecoder(Protocol):
    """A pure decoder of one wire format's stream: ``done`` after its terminal event."""

    done: bool

    def finish(self) -> None:
        """Raise ``InvalidResponse`` if the stream ended before its terminal event."""
        ...


async def decoded_sse(
    lines: AsyncGenerator[str, None],
    decoder: StreamDecoder,
    feed: Callable[[SSEEvent], list[Chunk]],
) -> AsyncGenerator[Chunk, None]:
    """The chunks ``feed`` decodes from the SSE events on ``lines``, up to the terminal one.

    Leaving closes the response at once (not at garbage collection); the body is read to its
    end *before* the terminal chunk is yielded, because consumers stop there (see drain).
    """
    async with aclosing(lines), aclosing(sse_events(lines)) as events:
        async for event in events:
            chunks = feed(event)
            if decoder.done:
                await drain(lines)
            for chunk in chunks:
                yield chunk
            if decoder.done:
                return
    decoder.finish()


async def probe(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str], time_limit: float
) -> bool:
    """True when a GET of ``url`` answers 2xx within ``time_limit``; False on any failure."""
    try:
        async with asyncio.timeout(time_limit):
            response = await client.get(url, headers=headers, timeout=time_limit)
    except (httpx.HTTPError, TimeoutError, OSError):
        return False
    return 200 <= response.status_code < 300
