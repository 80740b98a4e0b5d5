"""Every HTTP provider maps failures onto the same typed errors, and never leaks its key.

One suite, parametrized over the three wire formats, with ``httpx.MockTransport`` answering
the error shapes (statuses, headers, transport failures).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import httpx
import pytest

from vex_llm import (
    AnthropicProvider,
    AuthenticationFailed,
    ConnectionFailed,
    InvalidResponse,
    LLMRequest,
    OllamaProvider,
    OpenAICompatibleProvider,
    RateLimited,
    RequestFailed,
    ServerError,
)
from vex_llm.providers._base import HTTPProvider

KEY = "sk-secret-key-do-not-leak-42"

Factory = Callable[[httpx.AsyncClient | None, str], HTTPProvider]

FACTORIES: dict[str, Factory] = {
    "openai": lambda client, url: OpenAICompatibleProvider(f"{url}/v1", KEY, "m", client),
    "ollama": lambda client, url: OllamaProvider(url, "m", client),
    "anthropic": lambda client, url: AnthropicProvider(KEY, "m", url, client),
}


def provider_with(kind: str, handler: Callable[[httpx.Request], httpx.Response]) -> HTTPProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return FACTORIES[kind](client, "http://backend.test")


async def call(provider: HTTPProvider, streaming: bool) -> None:
    request = LLMRequest(prompt="hi")
    if streaming:
        [c async for c in provider.stream(request)]
    else:
        await provider.complete(request)


@pytest.fixture(params=sorted(FACTORIES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["complete", "stream"])
def streaming(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (401, {}, AuthenticationFailed, None),
        (403, {}, AuthenticationFailed, None),
        (429, {"retry-after": "17"}, RateLimited, 17.0),
        (429, {"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}, RateLimited, "positive"),
        (429, {}, RateLimited, None),
        (400, {}, RequestFailed, None),
        (404, {}, RequestFailed, None),
        (500, {}, ServerError, None),
        (503, {}, ServerError, None),
    ],
)
async def test_status_mapping(
    kind: str,
    streaming: bool,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    retry_after: object,
) -> None:
    body = '{"error": {"message": "the backend complains"}}'
    provider = provider_with(kind, lambda r: httpx.Response(status, headers=headers, text=body))
    with pytest.raises(error) as caught:
        await call(provider, streaming)
    assert type(caught.value) is error
    assert "the backend complains" in str(caught.value)
    if isinstance(caught.value, RequestFailed):
        assert caught.value.status == status
    if isinstance(caught.value, RateLimited):
        if retry_after == "positive":
            assert caught.value.retry_after is not None
            assert caught.value.retry_after > 1e9
        else:
            assert caught.value.retry_after == retry_after


async def test_a_transport_failure_is_connection_failed(kind: str, streaming: bool) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ConnectionFailed):
        await call(provider_with(kind, refuse), streaming)


async def test_a_closed_port_is_connection_failed(kind: str, streaming: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = FACTORIES[kind](None, f"http://127.0.0.1:{port}")
    async with provider:
        with pytest.raises(ConnectionFailed):
            await call(provider, streaming)
        assert not await provider.is_available()


async def test_non_json_success_is_invalid(kind: str) -> None:
    provider = provider_with(kind, lambda r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(InvalidResponse):
        await call(provider, streaming=False)
    with pytest.raises(InvalidResponse):
        await call(provider, streaming=True)  # an HTML page has no terminal event


@pytest.mark.parametrize("keyed", ["openai", "anthropic"])  # Ollama takes no key
async def test_the_key_never_leaks(keyed: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kind = keyed
    echo = f'{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}'
    provider = provider_with(kind, lambda r: httpx.Response(401, text=echo))
    texts = [repr(provider), str(provider), provider.name(), repr(vars(provider))]
    texts.append(repr(provider.cache_identity()))
    for streaming in (False, True):
        with pytest.raises(AuthenticationFailed) as caught:
            await call(provider, streaming)
        texts += [str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert all(KEY not in text for text in texts)
    assert any("[redacted]" in text for text in texts)


async def test_the_key_never_reaches_a_cache_entry(kind: str) -> None:
    from vex_llm import CachedProvider
    from vex_llm.cache.entry import encode_entry

    def ok(request: httpx.Request) -> httpx.Response:
        docs = {
            "openai": {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]},
            "ollama": {"message": {"role": "assistant", "content": "hi"}, "done": True},
            "anthropic": {"content": [{"type": "text", "text": "hi"}], "usage": {}},
        }
        return httpx.Response(200, json=docs[kind])

    cached = CachedProvider.wrap(provider_with(kind, ok))
    result = await cached.complete_result(LLMRequest(prompt="hi"))
    entry = await cached.store.get(result.key)
    assert entry is not None
    assert KEY.encode() not in encode_entry(entry)
    assert KEY not in result.key
