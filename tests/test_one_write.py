"""The one-write client (the providers' default when aiohttp is not used) sends a request in
one write and loses nothing; no default client keeps cookies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpcore
import httpx
import pytest

from vex_llm import LLMRequest, OpenAICompatibleProvider
from vex_llm.providers._client import (
    OneWriteBackend,
    OneWriteStream,
    default_http_client,
    one_write_http_client,
)


class Recorded(httpcore.AsyncNetworkStream):
    """A connection that records its writes and answers reads from a script."""

    def __init__(self, replies: list[bytes], fail_writes: bool = False) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.replies = replies
        self.fail_writes = fail_writes

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.calls.append(("write", buffer))
        if self.fail_writes:
            raise httpcore.WriteError("the peer closed")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self.calls.append(("read", b""))
        return self.replies.pop(0) if self.replies else b""

    async def aclose(self) -> None:
        self.calls.append(("close", b""))

    def get_extra_info(self, info: str) -> Any:
        return f"info:{info}"


async def test_writes_are_held_until_the_read_and_sent_as_one() -> None:
    inner = Recorded([b"HTTP/1.1 200 OK\r\n"])
    stream = OneWriteStream(inner)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream.write(b"")
    await stream.write(b'{"a":1}')
    assert inner.calls == []
    assert await stream.read(65536) == b"HTTP/1.1 200 OK\r\n"
    assert inner.calls == [("write", b'POST / HTTP/1.1\r\n\r\n{"a":1}'), ("read", b"")]
    assert await stream.read(65536) == b""  # nothing held: a plain read
    assert inner.calls[2:] == [("read", b"")]
    assert stream.get_extra_info("is_readable") == "info:is_readable"


async def test_a_failed_write_is_left_for_the_read_to_report() -> None:
    # httpcore ignores a request write that fails and reads: a server may have answered.
    inner = Recorded([b"HTTP/1.1 413 Too Large\r\n"], fail_writes=True)
    stream = OneWriteStream(inner)
    await stream.write(b"request")
    assert await stream.read(100) == b"HTTP/1.1 413 Too Large\r\n"


async def test_closing_drops_what_nobody_read_for() -> None:
    inner = Recorded([])
    stream = OneWriteStream(inner)
    await stream.write(b"request")
    await stream.aclose()
    assert inner.calls == [("close", b"")]


async def test_the_one_write_client_writes_each_request_once_and_works() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each read returns what one write sent (loopback, small writes): a whole request.
        data = await reader.read(65536)
        seen.append(data)
        body = b'{"choices":[{"message":{"role":"assistant","content":"ok"}}]}'
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        writer.write(head % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = one_write_http_client()
    assert isinstance(client._transport._pool._network_backend, OneWriteBackend)  # type: ignore[attr-defined]
    async with server, client:
        provider = OpenAICompatibleProvider(
            base_url=f"http://127.0.0.1:{port}/v1", model="m", http_client=client
        )
        response = await provider.complete(LLMRequest(prompt="hello"))
    assert response.content == "ok"
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert seen[0].endswith(b"}")  # the JSON body came with the head


async def test_providers_fall_back_on_it_when_the_environment_names_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpx's own client follows httpx's proxy rules; the aiohttp transport reads no proxies.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", model="m")
    try:
        client = provider._http.client
        assert isinstance(client._transport._pool._network_backend, OneWriteBackend)  # type: ignore[attr-defined]
    finally:
        await provider.aclose()


@pytest.mark.parametrize("factory", [default_http_client, one_write_http_client])
async def test_an_upstreams_cookie_never_goes_back_with_the_next_request(
    factory: Callable[[], httpx.AsyncClient],
) -> None:
    # One client serves every tenant of the proxy: a cookie set while answering one tenant
    # must not travel with the next tenant's request.
    seen: list[bytes] = []
    handlers: list[asyncio.Future[None]] = []  # each connection's, to wait for its close

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.get_running_loop().create_future()
        handlers.append(done)
        while data := await reader.read(65536):
            seen.append(data)
            body = b'{"choices":[{"message":{"role":"assistant","content":"ok"}}]}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"set-cookie: __cf_bm=tenant-a-state; Path=/; HttpOnly\r\n"
                b"content-length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = factory()
        provider = OpenAICompatibleProvider(
            base_url=f"http://127.0.0.1:{port}/v1", model="m", http_client=client
        )
        try:
            for tenant in ("a", "b"):
                answer = await provider.complete(LLMRequest(prompt="hi", tenant_id=tenant))
                assert answer.content == "ok"
        finally:
            await client.aclose()
        # The client closed its connection: wait for the handler to close its side (Python
        # 3.11's server does not), or its socket outlives the loop (a ResourceWarning that
        # failed whichever test came next).
        async with asyncio.timeout(10):
            await asyncio.gather(*handlers)
    assert len(seen) == 2
    assert all(b"cookie" not in request.lower() for request in seen)
