"""The real local LLM (llama.cpp ``llama-server`` + SmolLM2-135M), started once per session.

``make test`` installs it first (``python -m vex_llm.local.install``); a missing install is an
error here, not a skip: these tests are the proof that the providers work against a real model.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from vex_llm.local import LlamaServer


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer()
    # The server is a plain child process, not tied to any event loop, so a session
    # fixture can start it on a throwaway loop and every test's loop can talk to it.
    asyncio.run(server.start(timeout=120))
    try:
        yield server
    finally:
        asyncio.run(server.stop())


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that really leave for the server, by path."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def counting() -> CountingTransport:
    return CountingTransport()


async def server_counter(server: LlamaServer, name: str) -> float:
    """A counter from llama-server's own Prometheus metrics (e.g. ``tokens_predicted_total``)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{server.root_url}/metrics")).text
    match = re.search(rf"^llamacpp:{name} (\S+)$", text, re.MULTILINE)
    assert match, f"llama-server /metrics has no {name}"
    return float(match.group(1))
