"""The HTTP transport shared by the real providers: client ownership, bounded reads, scrubbing,
error mapping.

Everything a backend can do wrong over HTTP is turned into the ``vex_llm.errors`` tree here,
in one place: status codes (:func:`error_for_status`, pure, in ``_status``), transport
failures and the overall deadline (:func:`mapped_errors`), oversized answers
(:class:`AnswerLimits`, decoded by ``_content``). The parsers for what arrives (lines, SSE
events, JSON) are pure and live in :mod:`vex_llm.providers.sse`; client ownership and the
provider settings in :mod:`vex_llm.providers.base`.

Every byte that comes back from a backend passes through here before anything parses it,
and leaves scrubbed of the provider's key (:class:`~vex_llm.redaction.Redactor`): JSON
answers whole, streams line by line, error bodies before they are cut. So an upstream that
echoes its key reaches neither a client, nor a log, nor the cache.

Reads are bounded *after* decompression (see ``_content``): an answer over
``max_answer_bytes`` or a stream line over ``max_line_bytes`` fails with
:class:`~vex_llm.errors.AnswerTooLarge` as soon as the cap is passed.

The request timeout covers the *whole* exchange, body and stream included: callers compute
one deadline with :func:`deadline_after` and wrap every await on the network in
``asyncio.timeout_at(deadline)``. httpx's own timeouts only bound each read, so a server
trickling a byte a second would otherwise never time out.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from vex_llm.errors import (
    AnswerTooLarge,
    ConnectionFailed,
    InvalidResponse,
    LLMError,
    Timeout,
)
from vex_llm.models import Chunk
from vex_llm.providers._client import AiohttpClient
from vex_llm.providers._content import ACCEPT_ENCODING, BoundedDecoder
from vex_llm.providers._status import error_for_status, parse_retry_after
from vex_llm.providers.sse import LineSplitter, SSEDecoder, SSEEvent, parse_json
from vex_llm.redaction import PieceScrubber, Redactor

__all__ = [
    "DEFAULT_LIMITS",
    "AnswerLimits",
    "deadline_after",
    "decoded_sse",
    "drain",
    "error_for_status",
    "mapped_errors",
    "parse_json",
    "parse_retry_after",
    "post_json",
    "probe",
    "raise_for_status",
    "read_error_body",
    "stream_lines",
]


class Answer(Protocol):
    """An upstream's answer as read here: an ``httpx.Response`` streamed, or the default
    client's :class:`~vex_llm.providers._aiohttp.DirectAnswer` (the same members, without
    httpx's objects)."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> httpx.Headers:
        """The response headers."""
        ...

    @property
    def is_stream_consumed(self) -> bool:
        """True when the body is in memory already (``content``), not to be streamed."""
        ...

    @property
    def content(self) -> bytes:
        """The body, when ``is_stream_consumed``."""
        ...

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, still encoded."""
        ...

    async def aclose(self) -> None:
        """Release the connection."""
        ...


# How much of an error body is kept: enough for a human to see the complaint, bounded so a
# misbehaving server cannot make us buffer megabytes on the error path.
_ERROR_BODY_BYTES = 4096
_NO_SECRETS = Redactor(())


@dataclass(frozen=True, slots=True)
class AnswerLimits:
    """How much of an answer is read: ``max_answer_bytes`` in all (after decompression) and
    ``max_line_bytes`` per line of a stream. Past either, ``AnswerTooLarge``."""

    max_answer_bytes: int = 16 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_answer_bytes", "max_line_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")


DEFAULT_LIMITS = AnswerLimits()


async def read_error_body(response: Answer, redactor: Redactor = _NO_SECRETS) -> str:
    """At most the first 4 KiB of a (streamed) response body, scrubbed, decoded leniently.

    Read past the cut by the longest secret's length and scrubbed *before* cutting, so a key
    straddling the cut cannot leave its first characters in the excerpt.
    """
    want = _ERROR_BODY_BYTES + redactor.margin
    data = bytearray()
    async for piece in _decoded(response, want):
        data += piece
        if len(data) >= want:
            break
    return redactor.excerpt(bytes(data[:want]), _ERROR_BODY_BYTES).decode("utf-8", "replace")


async def _decoded(response: Answer, limit: int) -> AsyncIterator[bytes]:
    """The decoded body: at most ``limit`` bytes, plus one when there are more."""
    if response.is_stream_consumed:  # built in memory (a MockTransport answer): decoded
        yield response.content[: limit + 1]
        return
    decoder = BoundedDecoder(response.headers.get("content-encoding"), limit)
    async for raw in response.aiter_raw():
        for piece in decoder.feed(raw):
            yield piece
        if decoder.overflowed:
            return
    piece = decoder.flush()
    if piece:
        yield piece


async def read_answer(response: Answer, limit: int, what: str) -> AsyncGenerator[bytes, None]:
    """The decoded body of ``response`` piece by piece; ``AnswerTooLarge`` past ``limit``."""
    total = 0
    async for piece in _decoded(response, limit):
        total += len(piece)
        if total > limit:
            raise AnswerTooLarge(f"{what}: the answer is larger than the limit of {limit} bytes")
        yield piece


def deadline_after(timeout: float) -> float:
    """The event-loop time at which a ``timeout``-second exchange must be over."""
    return asyncio.get_running_loop().time() + timeout


@contextmanager
def mapped_errors(what: str, timeout: float, redactor: Redactor = _NO_SECRETS) -> Iterator[None]:
    """Turn transport failures inside the block into the ``LLMError`` tree.

    ``TimeoutError`` (the overall deadline) and httpx timeouts -> ``Timeout``; failing to
    connect -> ``ConnectionFailed``; the connection dropping mid-body -> ``InvalidResponse``
    (the answer was cut short). ``LLMError`` passes through. ``what`` names the call in
    messages; the redactor's secrets are scrubbed from them.
    """
    try:
        yield
    except LLMError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise Timeout(f"{what}: no complete response within {timeout:g} s") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        raise ConnectionFailed(redactor.scrub(f"{what}: cannot connect: {exc}")) from exc
    except httpx.RemoteProtocolError as exc:
        raise InvalidResponse(redactor.scrub(f"{what}: response cut short: {exc}")) from exc
    except httpx.TransportError as exc:
        raise ConnectionFailed(redactor.scrub(f"{what}: transport failed: {exc}")) from exc
    except httpx.DecodingError as exc:
        raise InvalidResponse(redactor.scrub(f"{what}: undecodable body: {exc}")) from exc


async def raise_for_status(response: Answer, redactor: Redactor = _NO_SECRETS) -> None:
    """Raise the typed error for a non-2xx ``response`` (reading a bounded body excerpt)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = await read_error_body(response, redactor)
    error = error_for_status(status, body, response.headers.get("retry-after"))
    # httpx does not follow redirects unless asked; a 1xx/3xx here is no answer at all.
    raise error or InvalidResponse(f"unexpected HTTP {status} from the backend")


def _headers(headers: dict[str, str]) -> dict[str, str]:
    # Only the codings the bounded decoder undoes, whatever decoders httpx has installed.
    return {"accept-encoding": ACCEPT_ENCODING, **headers}


#: How soon a connection must fail for a request to be sent again (see :func:`sent`): a
#: server closing an idle keep-alive connection fails the next request within a round trip.
RESEND_WINDOW = 0.25


@asynccontextmanager
async def sent(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    payload: dict[str, Any],
    headers: dict[str, str],
    time_limit: float,
) -> AsyncIterator[Answer]:
    """POST ``payload`` and yield the (streamed) response, closed on leaving.

    A server may close an idle keep-alive connection just as a request goes out on it
    (llama-server closes after every streamed answer without saying so): the request then
    gets no response at all. That one case is sent again, once, on a new connection; a
    response that started and broke off is never resent.
    """
    send: Callable[[], Awaitable[Answer]]
    if isinstance(client, AiohttpClient):
        # The default client's own way: the same request, without httpx's objects.
        target = url if isinstance(url, httpx.URL) else httpx.URL(url)
        merged = _headers(headers)

        def send() -> Awaitable[Answer]:
            return client.post_json(target, payload, merged, time_limit)

    else:  # any other client is used as it is
        request = client.build_request(
            "POST", url, json=payload, headers=_headers(headers), timeout=time_limit
        )

        def send() -> Awaitable[Answer]:
            return client.send(request, stream=True)

    started = time.monotonic()
    try:
        response = await send()
    except httpx.RemoteProtocolError as exc:
        # httpcore's one way of saying "the connection closed before any response"; every
        # other protocol error is a broken response and is not resent. Only a close that
        # came at once is the keep-alive race: an upstream that worked on the request and
        # then died must not be asked (and paid) twice.
        if "without sending a response" not in str(exc) or (
            time.monotonic() - started > RESEND_WINDOW
        ):
            raise
        response = await send()
    try:
        yield response
    finally:
        await response.aclose()


def _scrubbed_headers(headers: httpx.Headers, redactor: Redactor) -> httpx.Headers:
    # Headers handed on (a proxy passes some to its clients) are bytes from the backend too.
    if not redactor:
        return headers
    return httpx.Headers([(name, redactor.scrub(value)) for name, value in headers.multi_items()])


async def post_json(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    headers: dict[str, str],
    payload: dict[str, Any],
    time_limit: float,
    what: str,
    redactor: Redactor = _NO_SECRETS,
    limits: AnswerLimits = DEFAULT_LIMITS,
    on_headers: Callable[[httpx.Headers], None] | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON and return the JSON object answered, all within ``time_limit``.

    The body is read up to ``limits.max_answer_bytes`` and scrubbed before it is parsed.
    ``on_headers`` is handed the response headers of a successful answer.
    """
    with mapped_errors(what, time_limit, redactor):
        async with (
            asyncio.timeout(time_limit),
            sent(client, url, payload, headers, time_limit) as response,
        ):
            await raise_for_status(response, redactor)
            if on_headers is not None:
                on_headers(_scrubbed_headers(response.headers, redactor))
            body = bytearray()  # grown in place: no list of pieces beside a joined copy
            async for piece in read_answer(response, limits.max_answer_bytes, what):
                body += piece
    return parse_json(redactor.scrub_bytes(body), what)


async def stream_lines(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    headers: dict[str, str],
    payload: dict[str, Any],
    time_limit: float,
    what: str,
    redactor: Redactor = _NO_SECRETS,
    limits: AnswerLimits = DEFAULT_LIMITS,
    on_headers: Callable[[httpx.Headers], None] | None = None,
) -> AsyncGenerator[list[str], None]:
    """POST ``payload`` and yield the response body's lines (scrubbed) as they arrive: the
    complete lines of each network read as one list.

    One list per read, not one line at a time: a read often carries a whole answer's events
    (a fast upstream, a cache in front of it), and each hop through an async generator costs
    about a microsecond; per line, that was a visible share of a stream's miss
    (``benchmarks/proxy.py``). ``on_headers`` is handed the response headers of a successful
    answer, before any line.

    One deadline bounds the whole exchange; each network wait is wrapped in it separately
    because an ``asyncio.timeout`` must not span the ``yield`` (it would cancel whatever the
    consumer happens to be awaiting when it fires). Lines are scrubbed one by one: a key
    holds no line end, so it cannot straddle two lines, and no line waits for the next read.
    """
    deadline = deadline_after(time_limit)
    with mapped_errors(what, time_limit, redactor):
        async with AsyncExitStack() as stack:
            async with asyncio.timeout_at(deadline):
                response = await stack.enter_async_context(
                    sent(client, url, payload, headers, time_limit)
                )
                await raise_for_status(response, redactor)
                if on_headers is not None:
                    on_headers(_scrubbed_headers(response.headers, redactor))
            # Timed per network read, not per line: one read often carries many lines, and
            # entering a timeout costs a timer handle each time.
            pieces = await stack.enter_async_context(
                aclosing(read_answer(response, limits.max_answer_bytes, what))
            )
            # Streams are UTF-8: SSE always is (its specification has no other encoding) and
            # so is JSON on the wire (RFC 8259), NDJSON included. Not httpx's
            # ``response.encoding``: it parses the content type with the email package,
            # ~20 µs per stream, to read a charset a stream may not change.
            text = codecs.getincrementaldecoder("utf-8")("replace")
            splitter = LineSplitter(limits.max_line_bytes)
            scrub = redactor.scrub if redactor else None
            while True:
                async with asyncio.timeout_at(deadline):
                    data = await anext(pieces, None)
                if data is None:
                    lines = splitter.feed(text.decode(b"", final=True)) + splitter.flush()
                else:
                    lines = splitter.feed(text.decode(data))
                if lines:
                    yield lines if scrub is None else [scrub(line) for line in lines]
                if data is None:
                    return


#: How long a finished stream may take to end its body before the connection is dropped.
DRAIN_GRACE = 0.25


async def drain(lines: AsyncIterator[list[str]], grace: float = DRAIN_GRACE) -> None:
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
    lines: AsyncGenerator[list[str], None],
    decoder: StreamDecoder,
    feed: Callable[[SSEEvent], list[Chunk]],
    redactor: Redactor = _NO_SECRETS,
) -> AsyncGenerator[Chunk, None]:
    """The chunks ``feed`` decodes from the SSE events on ``lines``, up to the terminal one.

    Leaving closes the response at once (not at garbage collection); the body is read to its
    end *before* the terminal chunk is yielded, because consumers stop there (see drain).
    With a ``redactor``, the chunks' text is scrubbed across chunks too: the lines are
    scrubbed already, but a backend may send a key in several deltas.
    """
    scrub = StreamScrubber(redactor) if redactor else None
    events = SSEDecoder()
    async with aclosing(lines):
        async for batch in lines:
            for line in batch:
                event = events.feed(line)
                if event is None:
                    continue
                try:
                    chunks = feed(event)
                except RecursionError:  # json.loads of "[[[[..." nested past the stack
                    raise InvalidResponse("stream event is JSON nested too deeply") from None
                if decoder.done:
                    await drain(lines)
                for chunk in chunks:
                    yield chunk if scrub is None else scrub.chunk(chunk)
                if decoder.done:
                    return
    decoder.finish()


class StreamScrubber:
    """Scrubs a stream's text across its chunks, one :class:`PieceScrubber` per choice.

    Text that might begin a secret is held back and put in front of the choice's next text;
    a choice's event that carries its finish reason takes what is still held (no text of that
    choice comes after it), and the terminal chunk whatever is left. A chunk whose text moved
    gets its ``raw`` event rewritten to say the same, so a proxy relaying the events passes on
    exactly the scrubbed text — all of it, none of a secret.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pieces: dict[int, PieceScrubber] = {}

    def chunk(self, chunk: Chunk) -> Chunk:
        """``chunk`` with its text scrubbed (and its raw event to match)."""
        pieces = self._pieces.get(chunk.index)
        if pieces is None:
            pieces = self._pieces[chunk.index] = PieceScrubber(self._redactor)
        delta = pieces.feed(chunk.delta)
        if chunk.is_final:
            for held in self._pieces.values():
                delta += held.flush()
        elif pieces.holding and chunk.raw is not None and _finishes(chunk.raw):
            delta += pieces.flush()
        if delta == chunk.delta:
            return chunk
        # The event kept as ``raw`` must say what the scrubbed chunk says, or a proxy relaying
        # it would pass on what the scrubbing held back.
        return dataclasses.replace(chunk, delta=delta, raw=_with_text(chunk.raw, delta))


def _finishes(raw: str) -> bool:
    """True for an OpenAI chunk event whose choice carries a finish reason."""
    try:
        return json.loads(raw)["choices"][0]["finish_reason"] is not None
    except (ValueError, LookupError, TypeError):
        return False


def _with_text(raw: str | None, text: str) -> str | None:
    """An OpenAI chunk event ``raw`` with its first choice's text replaced by ``text``."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        doc["choices"][0]["delta"]["content"] = text
    except (ValueError, LookupError, TypeError):
        return None  # not an event whose text can be set: relay nothing rather than a leak
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


async def probe(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str], time_limit: float
) -> bool:
    """True when a GET of ``url`` answers 2xx within ``time_limit``; False on any failure.

    Only the status is read: a backend answering a huge (or endless) body costs nothing.
    """
    try:
        async with (
            asyncio.timeout(time_limit),
            client.stream("GET", url, headers=headers, timeout=time_limit) as response,
        ):
            return 200 <= response.status_code < 300
    except (httpx.HTTPError, TimeoutError, OSError):
        return False
