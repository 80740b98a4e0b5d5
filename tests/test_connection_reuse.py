"""A finished stream gives its connection back: the next request reuses it.

httpx closes a connection whose response was not read to the end, so a provider that stopped
at the terminal event (``[DONE]``, ``message_stop``, ``done: true``) paid for a new connection
on every stream. This server keeps connections alive and counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import pytest

from vex_llm import (
    AnthropicProvider,
    CachedProvider,
    Chunk,
    LLMCacheConfig,
    LLMProvider,
    LLMRequest,
    OllamaProvider,
    OpenAICompatibleProvider,
)

from .fakes import ndjson
from .test_anthropic import EVENTS, stream_body
from .test_ollama import FINAL, part
from .test_openai_compat import STREAM


class KeepAliveServer:
    """Answers every request on a connection with ``body`` (content-length framed)."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.reply = (
            f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def joined(pieces: list[bytes | float]) -> bytes:
    return b"".join(p for p in pieces if isinstance(p, bytes))


CASES: list[tuple[str, bytes, str, Callable[[str], LLMProvider]]] = [
    (
        "openai",
        joined(STREAM),
        "text/event-stream",
        lambda url: OpenAICompatibleProvider(f"{url}/v1", model="m"),
    ),
    (
        "anthropic",
        joined(stream_body(EVENTS)),
        "text/event-stream",
        lambda url: AnthropicProvider("sk-ant", "claude-x", url),
    ),
    (
        "ollama",
        joined(ndjson(part("Hi"), FINAL)),
        "application/x-ndjson",
        lambda url: OllamaProvider(url, model="llama3.2"),
    ),
]


async def read(stream: AsyncIterator[Chunk], stop_at_final: bool) -> None:
    """Read a stream to its end, or stop at the terminal chunk as CachedProvider does."""
    async with aclosing(stream) as chunks:
        async for chunk in chunks:
            if chunk.is_final and stop_at_final:
                return
        assert chunk.is_final


@pytest.mark.parametrize("stop_at_final", [False, True], ids=["read-to-end", "stop-at-final"])
@pytest.mark.parametrize(
    ("body", "kind", "make"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_consecutive_streams_share_one_connection(
    body: bytes, kind: str, make: Callable[[str], LLMProvider], stop_at_final: bool
) -> None:
    fake = KeepAliveServer(body, kind)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with make(url) as provider:
            for i in range(3):
                await read(provider.stream(LLMRequest(prompt=f"q{i}")), stop_at_final)
    finally:
        server.close()
    assert fake.requests == 3
    assert fake.connections == 1


async def test_streamed_misses_through_the_cache_share_one_connection() -> None:
    fake = KeepAliveServer(joined(STREAM), "text/event-stream")
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        provider = OpenAICompatibleProvider(f"{url}/v1", model="m")
        async with CachedProvider(provider, LLMCacheConfig.default()) as cached:
            for i in range(3):
                stream = await cached.open_stream(LLMRequest(prompt=f"q{i}"))
                assert stream.outcome == "miss"
                assert [c async for c in stream][-1].is_final
    finally:
        server.close()
    assert fake.requests == 3
    assert fake.connections == 1
