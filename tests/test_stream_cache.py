"""Stream caching in CachedProvider: record, replay, attach while running, fail and leave."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from vex_llm import (
    CacheControl,
    CachedProvider,
    CachedStream,
    CacheMiss,
    Chunk,
    InputLimits,
    InputTooLarge,
    InvalidResponse,
    LLMCacheConfig,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    MemoryStore,
    MockProvider,
    ServerError,
    SQLiteStore,
    Usage,
)
from vex_llm.wire.openai_chat import OpenAIStreamDecoder, assemble_completion

REQUEST = LLMRequest(prompt="tell me", temperature=0.0)
FINAL = Chunk(finish_reason="stop", usage=Usage(5, 3), model="gated")


class GatedProvider(LLMProvider):
    """A streaming upstream the test drives chunk by chunk through a queue."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.queue: asyncio.Queue[Chunk | Exception | None] = asyncio.Queue()

    def name(self) -> str:
        return "gated"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError("these tests stream")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return  # ends without a final chunk
                if isinstance(item, Exception):
                    raise item
                yield item
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def send(self, *items: Chunk | Exception | None) -> None:
        for item in items:
            self.queue.put_nowait(item)


@pytest.fixture
def gated() -> GatedProvider:
    return GatedProvider()


@pytest.fixture
def cache(gated: GatedProvider) -> CachedProvider:
    return CachedProvider(gated, LLMCacheConfig.default())


async def take(stream: CachedStream, n: int) -> list[Chunk]:
    return [await anext(stream) for _ in range(n)]


async def drain(stream: CachedStream) -> list[Chunk]:
    return [c async for c in stream]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_stream_is_recorded_and_replayed_identically() -> None:
    mock = MockProvider.constant("a fairly long streamed answer", chunk_size=4)
    cached = CachedProvider.wrap(mock)
    first = await cached.open_stream(REQUEST)
    live = await drain(first)
    second = await cached.open_stream(REQUEST)
    replayed = await drain(second)
    assert (first.outcome, second.outcome) == ("miss", "hit")
    assert replayed == live
    assert len(live) > 2
    assert replayed[-1].usage == live[-1].usage
    assert replayed[-1].finish_reason == "stop"
    assert first.key == second.key
    assert second.age is not None
    assert mock.calls == 1
    stats = cached.stats()
    assert (stats.hits, stats.misses, stats.tokens_saved) == (1, 1, live[-1].usage.total_tokens)  # type: ignore[union-attr]


async def test_complete_and_stream_serve_each_other() -> None:
    mock = MockProvider.constant("shared answer", chunk_size=5)
    cached = CachedProvider.wrap(mock)
    chunks = [c async for c in cached.stream(REQUEST)]
    answer = await cached.complete(REQUEST)
    assert answer.cached
    assert answer.content == "".join(c.delta for c in chunks) == "shared answer"
    other = LLMRequest(prompt="other")
    stored = await cached.complete(other)
    replay = await cached.open_stream(other)
    replayed = await drain(replay)
    assert replay.outcome == "hit"
    assert [c.delta for c in replayed] == ["shared answer", ""]
    assert replayed[-1].usage == stored.usage
    assert mock.calls == 2


async def test_an_identical_request_attaches_and_gets_earlier_chunks(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    first = await cache.open_stream(REQUEST)
    gated.send(Chunk("one "), Chunk("two "))
    assert [c.delta for c in await take(first, 2)] == ["one ", "two "]
    second = await cache.open_stream(REQUEST)
    assert second.outcome == "coalesced"
    assert [c.delta for c in await take(second, 2)] == ["one ", "two "]
    gated.send(Chunk("three"), FINAL)
    a, b = await asyncio.gather(drain(first), drain(second))
    assert a == b == [Chunk("three"), FINAL]
    assert gated.calls == 1
    stats = cache.stats()
    assert (stats.misses, stats.coalesced, stats.tokens_saved) == (1, 1, 8)
    third = await cache.open_stream(REQUEST)
    assert third.outcome == "hit"
    assert "".join(c.delta for c in await drain(third)) == "one two three"


async def test_a_failure_mid_stream_reaches_everyone_and_is_not_stored(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    streams = [await cache.open_stream(REQUEST) for _ in range(3)]
    gated.send(Chunk("partial"), ServerError(503, "upstream died"))
    for stream in streams:
        assert (await anext(stream)).delta == "partial"
        with pytest.raises(ServerError, match="upstream died"):
            await anext(stream)
    assert cache.count() == 0
    assert cache.stats().errors == 1
    again = await cache.open_stream(REQUEST)
    assert again.outcome == "miss"
    await settle()
    assert gated.calls == 2
    await again.aclose()


async def test_a_stream_without_a_final_chunk_is_invalid_and_not_stored(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    stream = await cache.open_stream(REQUEST)
    gated.send(Chunk("cut"), None)
    with pytest.raises(InvalidResponse, match="final chunk"):
        await drain(stream)
    assert cache.count() == 0


async def test_one_subscriber_cancelling_does_not_break_the_others(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    async def consume() -> list[Chunk]:
        return [c async for c in cache.stream(REQUEST)]

    quitter = asyncio.create_task(consume())
    stayer = asyncio.create_task(consume())
    gated.send(Chunk("a"))
    await settle()
    quitter.cancel()
    await settle()
    gated.send(Chunk("b"), FINAL)
    assert await stayer == [Chunk("a"), Chunk("b"), FINAL]
    assert quitter.cancelled()
    assert gated.cancelled == 0
    assert cache.count() == 1


async def test_when_everyone_leaves_the_upstream_is_cancelled(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    first = await cache.open_stream(REQUEST)
    second = await cache.open_stream(REQUEST)
    gated.send(Chunk("a"))
    await take(first, 1)
    await first.aclose()
    await settle()
    assert gated.cancelled == 0  # one subscriber is still there
    await second.aclose()
    await settle()
    assert gated.cancelled == 1
    assert cache.count() == 0
    fresh = await cache.open_stream(REQUEST)
    assert fresh.outcome == "miss"  # nobody attaches to a cancelled stream
    await settle()
    assert gated.calls == 2
    await fresh.aclose()


async def test_leaving_the_stream_generator_early_cancels_the_upstream(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    gated.send(Chunk("a"), Chunk("b"))
    async with aclosing(cache.stream(REQUEST)) as stream:
        async for _ in stream:
            break
    await settle()
    assert gated.cancelled == 1
    assert cache.count() == 0


async def test_no_cache_gets_its_own_upstream_and_refreshes_the_entry(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    shared = await cache.open_stream(REQUEST)
    fresh = await cache.open_stream(
        LLMRequest(prompt="tell me", temperature=0.0, cache=CacheControl(no_cache=True))
    )
    assert fresh.outcome == "bypass"
    await settle()
    assert gated.calls == 2
    gated.send(Chunk("x"), FINAL, Chunk("y"), FINAL)
    await drain(shared)
    await drain(fresh)
    assert cache.stats().bypasses == 1
    hit = await cache.open_stream(REQUEST)
    assert hit.outcome == "hit"


async def test_no_store_streams_are_not_stored(cache: CachedProvider, gated: GatedProvider) -> None:
    request = LLMRequest(prompt="p", cache=CacheControl(no_store=True))
    stream = await cache.open_stream(request)
    gated.send(Chunk("x"), FINAL)
    assert await drain(stream) == [Chunk("x"), FINAL]
    assert cache.count() == 0


async def test_decisions_and_bad_input_fail_before_the_stream_starts(
    gated: GatedProvider,
) -> None:
    limits = InputLimits(max_prompt_bytes=10)
    cache = CachedProvider(gated, LLMCacheConfig(limits=limits))
    with pytest.raises(CacheMiss):
        await cache.open_stream(LLMRequest(prompt="p", cache=CacheControl(only_if_cached=True)))
    with pytest.raises(InputTooLarge):
        await cache.open_stream(LLMRequest(prompt="x" * 100))
    with pytest.raises(TypeError, match="LLMRequest"):
        await cache.open_stream("hello")  # type: ignore[arg-type]
    await settle()
    assert gated.calls == 0
    assert cache.stats().only_if_cached_misses == 1


async def test_many_identical_streams_make_one_upstream_call(
    cache: CachedProvider, gated: GatedProvider
) -> None:
    async def consume() -> str:
        return "".join([c.delta async for c in cache.stream(REQUEST)])

    tasks = [asyncio.create_task(consume()) for _ in range(50)]
    await settle()
    gated.send(Chunk("same "), Chunk("for all"), FINAL)
    assert set(await asyncio.gather(*tasks)) == {"same for all"}
    assert gated.calls == 1
    stats = cache.stats()
    assert (stats.misses, stats.coalesced) == (1, 49)


async def test_ready_tells_whether_iteration_would_wait() -> None:
    cached = CachedProvider.wrap(MockProvider.constant("abcdefgh", latency=0.05, chunk_size=4))
    live = await cached.open_stream(LLMRequest(prompt="p"))
    assert not live.ready()  # the upstream has produced nothing yet
    first = await anext(live)
    assert first.delta == "abcd"
    await asyncio.sleep(0.01)
    assert live.ready()  # the mock publishes its chunks back to back
    assert [c.delta async for c in live] == ["efgh", ""]
    await live.aclose()
    replay = await cached.open_stream(LLMRequest(prompt="p"))
    assert replay.outcome == "hit"
    assert replay.ready()
    await replay.aclose()


async def test_an_attached_stream_keeps_its_own_timeout() -> None:
    # timeout is not in the key, so a short-timeout stream may attach to a slow one: it must
    # still fail after its own timeout (typed), and leave the first stream running.
    from vex_llm import Timeout

    upstream = GatedProvider()
    cached = CachedProvider(upstream, LLMCacheConfig())
    first = await cached.open_stream(REQUEST)
    hasty = await cached.open_stream(
        LLMRequest(prompt=REQUEST.prompt, temperature=0.0, timeout=0.1)
    )
    assert hasty.outcome == "coalesced"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Timeout):
        await anext(hasty)
    assert loop.time() - started < 0.6
    await upstream.queue.put(Chunk(delta="ok"))
    await upstream.queue.put(FINAL)
    assert [c.delta async for c in first] == ["ok", ""]
    assert upstream.calls == 1
    assert upstream.cancelled == 0


async def test_a_stream_larger_than_the_cache_is_relayed_whole_and_not_kept() -> None:
    """Past what the cache could ever store, the recording stops: every subscriber still gets
    the whole answer (a JSON member too), and nothing is stored."""
    text = "x" * 40_000
    upstream = MockProvider.constant(text, chunk_size=100, latency=0.05)
    cached = CachedProvider(upstream, LLMCacheConfig(max_entries=None, max_bytes=10_000))
    request = LLMRequest(prompt="big")
    streamed, answered = await asyncio.gather(
        _text(cached.stream(request)), cached.complete(request)
    )
    assert streamed == text
    assert answered.content == text
    assert upstream.calls == 1
    assert cached.stats().entries == 0
    assert await _text(cached.stream(request)) == text
    assert upstream.calls == 2  # not stored: asked again


async def _text(chunks: AsyncIterator[Chunk]) -> str:
    return "".join([c.delta async for c in chunks])


class EventsProvider(LLMProvider):
    """An upstream streaming OpenAI chat events (an extra field included), through the same
    decoder as the OpenAI-compatible provider."""

    EVENTS = (
        {"id": "c1", "created": 7, "model": "m", "system_fingerprint": "fp",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                      "finish_reason": None}]},
        {"id": "c1", "created": 7, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "lo", "reasoning_content": "hm"},
                      "finish_reason": "stop"}]},
        {"id": "c1", "created": 7, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
    )  # fmt: skip

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()  # the last event waits for it
        self.gate.set()

    def name(self) -> str:
        return "events"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError("these tests stream")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        decoder = OpenAIStreamDecoder("m")
        for data in [*(json.dumps(e) for e in self.EVENTS), "[DONE]"]:
            if data == "[DONE]":
                await self.gate.wait()
            for chunk in decoder.feed(data):
                yield chunk


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_json_hit_from_a_recorded_stream_is_the_whole_answer(
    kind: str, tmp_path: Path
) -> None:
    """The entry of a streamed answer keeps its typed fields and the recording; a JSON hit
    gets the upstream's whole object assembled from the recording, on every store (read back
    from SQLite in a new cache too), and a JSON caller joining the stream in flight gets it."""
    upstream = EventsProvider()
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "c.db")
    cache = CachedProvider(upstream, LLMCacheConfig.default(), store=store)
    expected = assemble_completion(EventsProvider.EVENTS)
    assert expected["choices"][0]["message"]["reasoning_content"] == "hm"
    upstream.gate.clear()
    stream = await cache.open_stream(REQUEST)
    if kind == "memory":  # read without an await: the JSON caller joins in its first step
        member = asyncio.ensure_future(cache.complete_result(REQUEST))
        await asyncio.sleep(0)
    upstream.gate.set()
    streamed = [chunk async for chunk in stream]
    assert streamed[-1].usage == Usage(4, 2)
    if kind == "memory":
        joined = await member
        assert joined.outcome == "coalesced"
        assert joined.response.raw is not None
        assert joined.response.raw.value == expected

    entry = await store.get(cache.key_for(REQUEST))
    assert entry is not None
    assert entry.chunks is not None
    assert entry.response.raw is None  # the answer is kept once: in the recording
    later = CachedProvider(EventsProvider(), LLMCacheConfig.default(), store=store)
    for reader in (cache, later) if kind == "sqlite" else (cache,):
        hit = await reader.complete_result(REQUEST)
        assert hit.outcome == "hit"
        assert hit.response.cached
        assert hit.response.raw is not None
        assert hit.response.raw.value == expected
        assert hit.response.content == "Hello"
        assert hit.response.usage == Usage(4, 2)
        assert (await reader.complete(REQUEST)).raw == hit.response.raw
    assert upstream.calls == 1
    await store.aclose()
