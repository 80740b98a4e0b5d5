"""The HTTP transport: no key in anything that comes back, and every answer bounded.

A fake backend (``httpx.MockTransport``) echoes the provider's key in successful answers,
streams and error bodies, or sends answers that are too large in one way or another.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from vex_llm import (
    AnswerTooLarge,
    CachedProvider,
    InvalidResponse,
    LLMCacheConfig,
    LLMRequest,
    MemoryStore,
    OpenAICompatibleProvider,
    RequestFailed,
    ServerError,
)
from vex_llm.providers import AnswerLimits

KEY = "sk-upstream-SECRET-0123456789"  # 29 characters


def answer(content: str, **extra: object) -> dict[str, object]:
    return {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        **extra,
    }


def sse(*docs: dict[str, object]) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs) + b"data: [DONE]\n\n"
    )


def delta(text: str, finish: str | None = None) -> dict[str, object]:
    return {
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


def provider(
    handler: Callable[[httpx.Request], httpx.Response],
    limits: AnswerLimits | None = None,
) -> OpenAICompatibleProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    p = OpenAICompatibleProvider(
        "http://upstream.test/v1", api_key=KEY, model="m", http_client=client
    )
    if limits is not None:
        p.answer_limits = limits
    return p


def leaks(text: str, key: str = KEY, run: int = 6) -> list[str]:
    """The pieces of ``key`` at least ``run`` characters long that appear in ``text``."""
    return [key[i : i + run] for i in range(len(key) - run + 1) if key[i : i + run] in text]


async def body_of(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


# -- secrets -------------------------------------------------------------------------------


async def test_a_successful_answer_echoing_the_key_is_scrubbed_before_the_cache() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echo = request.headers["authorization"]
        return httpx.Response(200, json=answer(f"your key is {echo}", debug={"auth": echo}))

    store = MemoryStore(100)
    cached = CachedProvider(provider(handler), LLMCacheConfig.default(), store=store)
    first = await cached.complete_result(LLMRequest.simple("hi"))
    second = await cached.complete_result(LLMRequest.simple("hi"))
    assert (first.outcome, second.outcome) == ("miss", "hit")
    for result in (first, second):
        assert KEY not in repr(result.response)
        assert "[redacted]" in result.response.content
    assert not leaks(repr(await store.get(first.key)))
    await cached.aclose()


async def test_a_stream_echoing_the_key_is_scrubbed_line_by_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse(delta("key: "), delta(KEY), delta(f"again {KEY}!"), delta("", "stop"))
        # Cut into 7-byte pieces: the key arrives across several network reads.
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        return httpx.Response(200, content=body_of(pieces))

    store = MemoryStore(100)
    cached = CachedProvider(provider(handler), LLMCacheConfig.default(), store=store)
    for _ in range(2):  # a miss, then a hit
        chunks = [c async for c in cached.stream(LLMRequest.simple("hi"))]
        text = "".join(c.delta for c in chunks)
        assert text == "key: [redacted]again [redacted]!"
    await cached.aclose()


@pytest.mark.parametrize("before", [4096 - 18, 4096 - 1, 4096 - 28, 4096, 0])
async def test_an_error_body_with_the_key_across_the_cut_leaks_nothing(before: int) -> None:
    body = (" " * before + KEY + " tail").encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=body_of([body[:3000], body[3000:]]))

    with pytest.raises(ServerError) as caught:
        await provider(handler).complete(LLMRequest.simple("hi"))
    assert not leaks(str(caught.value), run=4)


async def test_a_gzip_error_body_is_bounded_and_scrubbed() -> None:
    raw = gzip.compress(KEY.encode() + b" " + b"x" * 50_000_000)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, headers={"content-encoding": "gzip"}, content=body_of([raw]))

    tracemalloc.start()
    try:
        with pytest.raises(RequestFailed) as caught:
            await provider(handler).complete(LLMRequest.simple("hi"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert KEY not in str(caught.value)
    assert peak < 8_000_000


# -- bounds ---------------------------------------------------------------------------------


def gzip_bomb(size: int) -> bytes:
    text = json.dumps(answer("x" * size)).encode()
    return gzip.compress(text, compresslevel=9)


async def test_a_gzip_bomb_fails_at_the_cap_without_inflating() -> None:
    bomb = gzip_bomb(40_000_000)
    assert len(bomb) < 100_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=body_of([bomb]))

    tracemalloc.start()
    try:
        with pytest.raises(AnswerTooLarge, match="1048576"):
            await provider(handler, AnswerLimits(max_answer_bytes=1 << 20)).complete(
                LLMRequest.simple("hi")
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "identity"])
async def test_compressed_answers_under_the_cap_are_read(coding: str) -> None:
    text = json.dumps(answer("hello " * 1000)).encode()
    if coding == "gzip":
        body = gzip.compress(text)
    elif coding == "deflate":
        body = zlib.compress(text)
    elif coding == "raw-deflate":
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body, coding = c.compress(text) + c.flush(), "deflate"
    else:
        body = text

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "gzip, deflate"
        pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
        return httpx.Response(200, headers={"content-encoding": coding}, content=body_of(pieces))

    response = await provider(handler).complete(LLMRequest.simple("hi"))
    assert response.content == "hello " * 1000


async def test_an_unasked_for_coding_is_an_invalid_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "br"}, content=body_of([b"\0"]))

    with pytest.raises(Exception, match="Content-Encoding"):
        await provider(handler).complete(LLMRequest.simple("hi"))


async def test_a_json_answer_over_the_cap_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer("x" * 3000))

    with pytest.raises(AnswerTooLarge):
        await provider(handler, AnswerLimits(max_answer_bytes=2000)).complete(
            LLMRequest.simple("hi")
        )


async def test_an_endless_line_fails_fast_not_at_the_timeout() -> None:
    sent = [0]

    async def endless() -> AsyncIterator[bytes]:
        yield b"data: "
        while sent[0] < 20_000_000:
            sent[0] += 65536
            yield b"a" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    p = provider(handler, AnswerLimits(max_line_bytes=1 << 20))
    with pytest.raises(AnswerTooLarge, match="line"):
        async for _ in p.stream(LLMRequest.simple("hi")):
            pass
    assert sent[0] <= (1 << 20) + 2 * 65536


async def test_a_stream_over_the_answer_cap_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse(*[delta("word ") for _ in range(2000)], delta("", "stop"))
        return httpx.Response(200, content=body_of([body]))

    p = provider(handler, AnswerLimits(max_answer_bytes=10_000))
    with pytest.raises(AnswerTooLarge):
        async for _ in p.stream(LLMRequest.simple("hi")):
            pass


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        AnswerLimits(max_line_bytes=0)
    with pytest.raises(ValueError, match="max_answer_bytes"):
        AnswerLimits(max_answer_bytes=True)


async def test_a_stream_event_nested_too_deeply_is_an_invalid_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b"data: " + b"[" * 200_000 + b"\n\n"
        return httpx.Response(200, content=body_of([body]))

    with pytest.raises(InvalidResponse, match="nested"):
        async for _ in provider(handler).stream(LLMRequest.simple("hi")):
            pass


async def test_a_probe_reads_only_the_status() -> None:
    sent = [0]

    async def endless() -> AsyncIterator[bytes]:
        while sent[0] < 50_000_000:
            sent[0] += 65536
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    assert await provider(handler).is_available()
    assert sent[0] <= 65536


@pytest.mark.parametrize("stream", [False, True])
async def test_headers_passed_on_are_scrubbed_too(stream: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"x-request-id": f"req-{KEY}", "x-ratelimit-remaining": "7"}
        if stream:
            return httpx.Response(200, headers=headers, content=body_of([sse(delta("hi", "stop"))]))
        return httpx.Response(200, headers=headers, json=answer("hi"))

    p = provider(handler)
    if stream:
        seen = repr([c.headers async for c in p.stream(LLMRequest.simple("hi"))])
    else:
        seen = repr((await p.complete(LLMRequest.simple("hi"))).headers)
    assert "x-ratelimit-remaining" in seen
    assert KEY not in seen
    assert "req-[redacted]" in seen
