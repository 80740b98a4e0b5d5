"""The aiohttp transport behaves as httpx's own, against real loopback servers: the same
bytes on the wire, the same exceptions for the same failures, connections kept and dropped
when httpx keeps and drops them, and the providers' bounds and resend still working over it."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import aiohttp
import httpx
import pytest

from vex_llm import AnswerTooLarge, LLMError, LLMRequest, OpenAICompatibleProvider
from vex_llm.providers._aiohttp import NO_RESPONSE, AiohttpTransport, mapped
from vex_llm.providers._client import AiohttpClient, NoCookies, default_http_client
from vex_llm.providers._http import AnswerLimits

KEY = "sk-secret-0123456789abcdef"
ANSWER = json.dumps(
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
).encode()

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def reply(body: bytes = ANSWER, *head: bytes) -> bytes:
    """A keep-alive JSON answer, content-length framed."""
    lines = [b"HTTP/1.1 200 OK", b"content-type: application/json", *head]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request as it arrived (content-length or chunked body); b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        return head + await reader.readuntil(b"0\r\n\r\n")
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return head + await reader.readexactly(int(line.split(b":")[1]))
    return head


class Upstream:
    """A loopback server running ``handler`` on each connection; it counts connections and
    keeps the requests it read (through :meth:`request`)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        data = await read_request(reader)
        if data:
            self.requests.append(data)
        return data

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Upstream]:
        server = await asyncio.start_server(self._run, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):  # handlers still waiting on a read
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Upstream]:
    async with Upstream(handler).running() as upstream:
        yield upstream


def answering(body: bytes = ANSWER, *head: bytes) -> Upstream:
    """An upstream answering every request with ``reply(body, *head)``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await upstream.request(reader):
            writer.write(reply(body, *head))
            await writer.drain()

    upstream = Upstream(answer)
    return upstream


@pytest.fixture
async def client() -> AsyncIterator[AiohttpClient]:
    async with AiohttpClient(transport=AiohttpTransport(), cookies=NoCookies()) as made:
        yield made


@dataclass
class Read:
    """What a post read: the answer's status, headers and whole body."""

    status_code: int
    headers: httpx.Headers
    content: bytes


async def post(client: httpx.AsyncClient, url: str, seconds: float = 5.0) -> Read:
    """POST a small JSON body the way the providers do (``post_json``: no httpx request or
    response built) and read the whole answer."""
    assert isinstance(client, AiohttpClient)
    response = await client.post_json(
        httpx.URL(f"{url}/v1/chat/completions"),
        {"model": "m"},
        {"authorization": f"Bearer {KEY}"},
        seconds,
    )
    try:
        body = b"".join([piece async for piece in response.aiter_raw()])
    finally:
        await response.aclose()
    return Read(response.status_code, response.headers, body)


# -- the mapping, pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "answered", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("slow connect"), False, httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("slow read"), True, httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), True, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("short"), True, httpx.RemoteProtocolError),
        (aiohttp.InvalidURL("nowhere"), False, httpx.UnsupportedProtocol),
        (aiohttp.ClientOSError(104, "reset"), True, httpx.ReadError),
        (aiohttp.ClientConnectionResetError("closing"), True, httpx.ReadError),
        (aiohttp.ClientError("odd"), False, httpx.TransportError),
    ],
)
def test_aiohttp_errors_map_onto_httpx_errors(
    error: aiohttp.ClientError, answered: bool, expected: type[httpx.TransportError]
) -> None:
    assert type(mapped(error, answered=answered)) is expected


@pytest.mark.parametrize(
    "error", [aiohttp.ServerDisconnectedError(), aiohttp.ClientConnectionResetError("closing")]
)
def test_a_close_before_any_response_reads_as_httpcore_says_it(
    error: aiohttp.ClientError,
) -> None:
    # The words _http.sent looks for to resend the keep-alive race.
    exc = mapped(error, answered=False)
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert str(exc) == NO_RESPONSE


# -- failures on the wire ------------------------------------------------------------------


async def test_a_refused_port_is_a_connect_error(client: AiohttpClient) -> None:
    with socket.socket() as taken:  # a port nobody listens on
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await post(client, f"http://127.0.0.1:{port}")


async def test_a_server_closing_at_once_sent_no_response(client: AiohttpClient) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with serving(close) as upstream:
        with pytest.raises(httpx.RemoteProtocolError, match=NO_RESPONSE):
            await post(client, upstream.url)


@pytest.mark.parametrize(
    "cut",
    [
        b"content-length: 100\r\n\r\n" + b"x" * 10,
        b"transfer-encoding: chunked\r\n\r\n64\r\n" + b"x" * 10,
    ],
    ids=["content-length", "chunked"],
)
async def test_a_body_cut_short_is_a_protocol_error(client: AiohttpClient, cut: bytes) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + cut)
        await writer.drain()

    async with serving(short) as upstream:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, upstream.url)


@pytest.mark.parametrize("where", ["head", "body"])
async def test_a_stalled_server_is_a_read_timeout(client: AiohttpClient, where: str) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if where == "body":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nx")
        await reader.read()  # until the client gives up and closes

    async with serving(stall) as upstream:
        with pytest.raises(httpx.ReadTimeout):
            await post(client, upstream.url, 0.2)


async def test_a_connect_that_never_completes_is_a_connect_timeout(
    client: AiohttpClient,
) -> None:
    # A listener that never accepts, its backlog full: Linux drops further SYNs, so the
    # next connect waits.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                with suppress(BlockingIOError):  # connecting: it waits in the backlog
                    filler.connect(listener.getsockname())
            with pytest.raises(httpx.ConnectTimeout):
                await post(client, url, 0.2)
        finally:
            for filler in fillers:
                filler.close()


async def test_a_malformed_answer_names_no_request_header(client: AiohttpClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 two hundred\r\n\r\n")
        await writer.drain()

    async with serving(garbage) as upstream:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await post(client, upstream.url)
    assert KEY not in "".join(traceback.format_exception(caught.value))


# -- connections ---------------------------------------------------------------------------


async def test_keep_alive_serves_two_calls_on_one_connection(client: AiohttpClient) -> None:
    async with answering(ANSWER, b"x-ratelimit-a: 1", b"X-Ratelimit-A: 2").running() as upstream:
        first = await post(client, upstream.url)
        second = await post(client, upstream.url)
    assert first.content == second.content == ANSWER
    assert second.headers.get_list("x-ratelimit-a") == ["1", "2"]  # raw, multi-valued
    assert (upstream.connections, len(upstream.requests)) == (1, 2)


async def test_a_half_read_answer_closes_its_connection(client: AiohttpClient) -> None:
    async def long(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await upstream.request(reader):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 1000)
            await writer.drain()

    async with serving(long) as upstream:
        url = f"{upstream.url}/v1/chat/completions"
        for _ in range(2):
            async with client.stream("POST", url, json={}) as response:
                assert await anext(response.aiter_raw())
        # The rest of the first answer would come ahead of the second: a new connection.
        assert upstream.connections == 2


# -- what goes out -------------------------------------------------------------------------


async def test_the_request_on_the_wire_is_the_one_httpx_sends(client: AiohttpClient) -> None:
    async with answering().running() as upstream, httpx.AsyncClient() as plain:
        for sender in (plain, client):
            request = sender.build_request(
                "POST",
                f"{upstream.url}/v1/chat/completions?q=a%2Fb",
                json={"model": "m"},
                headers={"Authorization": f"Bearer {KEY}", "x-extra": "1"},
            )
            response = await sender.send(request)
            assert response.content == ANSWER
    theirs, ours = upstream.requests
    assert ours == theirs


async def test_a_providers_post_goes_out_as_httpx_would_send_it(client: AiohttpClient) -> None:
    # post_json builds the request httpx would build, without its objects: the same bytes.
    async with answering().running() as upstream, httpx.AsyncClient() as plain:
        for http_client in (plain, client):
            provider = OpenAICompatibleProvider(
                f"{upstream.url}/v1", model="m", api_key=KEY, http_client=http_client
            )
            request = LLMRequest(prompt="h\u00e9 \U0001f600", max_tokens=5, tenant_id="t")
            assert (await provider.complete(request)).content
            stream = LLMRequest(prompt="again", cache={"no_store": True})
            with suppress(LLMError):  # the answer is no stream: only the request matters
                async for _ in provider.stream(stream):
                    pass
    theirs = upstream.requests[:2]
    ours = upstream.requests[2:]
    assert len(ours) == 2
    assert ours == theirs


async def test_a_streamed_request_body_goes_out_chunked(client: AiohttpClient) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"model":'
        yield b'"m"}'

    async with answering().running() as upstream:
        response = await client.post(f"{upstream.url}/v1/x", content=pieces())
    assert response.content == ANSWER
    (request,) = upstream.requests
    assert request.lower().count(b"transfer-encoding: chunked") == 1
    assert request.endswith(b'9\r\n{"model":\r\n4\r\n"m"}\r\n0\r\n\r\n')


# -- the providers over it -----------------------------------------------------------------


def test_it_is_the_providers_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # a proxy keeps httpx's client
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert isinstance(default_http_client(), AiohttpClient)


async def test_a_gzip_answer_is_bounded_after_decompression(client: AiohttpClient) -> None:
    text = json.dumps({"choices": [{"message": {"content": "x" * 200_000}}]}).encode()
    packed = gzip.compress(text)
    assert len(packed) < 2_000
    async with answering(packed, b"content-encoding: gzip").running() as upstream:
        provider = OpenAICompatibleProvider(f"{upstream.url}/v1", model="m", http_client=client)
        provider.answer_limits = AnswerLimits(max_answer_bytes=100_000)
        with pytest.raises(AnswerTooLarge, match="100000"):
            await provider.complete(LLMRequest(prompt="hi"))
        provider.answer_limits = AnswerLimits()
        answer = await provider.complete(LLMRequest(prompt="hi"))
    assert answer.content == "x" * 200_000


async def test_a_request_on_a_connection_closed_under_it_is_sent_again(
    client: AiohttpClient,
) -> None:
    # The keep-alive race, made deterministic: the upstream answers the first request and
    # closes the connection as the second arrives on it, unanswered.
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upstream.request(reader)
        writer.write(reply())
        await writer.drain()
        await read_request(reader)

    async with serving(once) as upstream:
        provider = OpenAICompatibleProvider(f"{upstream.url}/v1", model="m", http_client=client)
        for _ in range(2):
            assert (await provider.complete(LLMRequest(prompt="hi"))).content == "ok"
    assert (upstream.connections, len(upstream.requests)) == (2, 2)
