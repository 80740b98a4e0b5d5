"""Embeddings in the library: the value types, the key, and ``CachedProvider.embed`` caching
per input (only missing inputs go upstream, in order; single-flight per input; counters)."""

from __future__ import annotations

import asyncio
import math

import pytest

from vex_llm import CachedProvider, LLMCacheConfig, MockProvider
from vex_llm.cache.embedding_key import embedding_key, embedding_prefix, token_shares
from vex_llm.cache.key import cache_key
from vex_llm.embeddings import (
    MAX_INPUTS,
    EmbeddingRequest,
    EmbeddingResponse,
    vector_base64,
    vector_from_base64,
)
from vex_llm.errors import CacheMiss, InputTooLarge, LLMError, ServerError, UnsupportedFeature
from vex_llm.models import CacheControl, InputLimits, LLMRequest
from vex_llm.provider import LLMProvider
from vex_llm.providers.mock import mock_vector
from vex_llm.resilience import CircuitBreaker, FallbackProvider, RetryingProvider


class RecordingMock(MockProvider):
    """A mock that keeps every batch of inputs it was sent."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.batches: list[tuple[object, ...]] = []
        self.called = asyncio.Event()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.batches.append(request.inputs)
        self.called.set()
        return await super().embed(request)


# -- value types ----------------------------------------------------------------------------


def test_request_normalises_inputs() -> None:
    assert EmbeddingRequest("hi").inputs == ("hi",)
    assert EmbeddingRequest(["a", "b"]).inputs == ("a", "b")
    assert EmbeddingRequest([1, 2, 3]).inputs == ((1, 2, 3),)
    assert EmbeddingRequest([[1, 2], [3]]).inputs == ((1, 2), (3,))
    assert EmbeddingRequest(["a"]).tokenized is False
    assert EmbeddingRequest([[1]]).tokenized is True


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ([], ValueError),
        ("", ValueError),
        (["a", ""], ValueError),
        ([[]], ValueError),
        (["a", 1], TypeError),
        ([[1], "a"], TypeError),
        ([[1, "x"]], TypeError),
        ([[1, True]], TypeError),
        ([[-1]], ValueError),
        ([[1, [2]]], TypeError),
        (b"bytes", TypeError),
        (None, TypeError),
        (["x"] * (MAX_INPUTS + 1), ValueError),
    ],
)
def test_request_refuses_bad_inputs(inputs: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        EmbeddingRequest(inputs)  # type: ignore[arg-type]


def test_request_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        EmbeddingRequest("a", dimensions=0)
    with pytest.raises(TypeError, match="dimensions"):
        EmbeddingRequest("a", dimensions=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="typed"):
        EmbeddingRequest("a", extra={"input": "b"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        EmbeddingRequest("a", timeout=0)
    request = EmbeddingRequest("a", extra={"user": "u", "b": 1})  # type: ignore[arg-type]
    assert request.extra is not None
    assert request.extra.value == {"b": 1, "user": "u"}


def test_size_limit_in_bytes() -> None:
    limits = InputLimits(max_prompt_bytes=10)
    EmbeddingRequest(["12345", "12345"]).validate(limits)
    with pytest.raises(InputTooLarge):
        EmbeddingRequest(["12345", "123456"]).validate(limits)
    with pytest.raises(InputTooLarge):
        EmbeddingRequest(["é" * 6]).validate(limits)  # 12 bytes
    with pytest.raises(InputTooLarge):
        EmbeddingRequest([[1, 2, 3]]).validate(limits)  # 4 bytes a token


def test_base64_is_little_endian_float32() -> None:
    vector = (0.5, -1.25, 3.0)
    assert vector_from_base64(vector_base64(vector)) == vector
    assert vector_base64([1.0]) == "AACAPw=="  # OpenAI's bytes for 1.0f
    with pytest.raises(ValueError, match="base64"):
        vector_from_base64("AAA")


# -- keys -----------------------------------------------------------------------------------


def _key(item: object, **fields: object) -> str:
    request = EmbeddingRequest("x", **fields)  # type: ignore[arg-type]
    return embedding_key(embedding_prefix(("mock:m",), request), item)  # type: ignore[arg-type]


def test_key_covers_what_changes_a_vector() -> None:
    base = _key("hello")
    assert base == _key("hello", timeout=5, extra={"user": "someone"})
    different = {
        _key("hello!"),
        _key("hello", tenant_id="t"),
        _key("hello", tenant_id=""),
        _key("hello", model="m2"),
        _key("hello", dimensions=64),
        _key("hello", cache=CacheControl(namespace="n")),
        _key("hello", extra={"input_type": "query"}),
        _key((1, 2)),
    }
    assert base not in different
    assert len(different) == 8
    # A tenant cannot forge another tenant's key through its model name.
    assert _key("a", tenant_id="t", model="m") != _key("a", tenant_id=None, model="1:tm")
    assert _key((1, 23)) != _key((12, 3))


def test_embedding_keys_never_meet_chat_keys() -> None:
    chat = cache_key(LLMRequest(prompt="hello"), ("mock:m",))
    assert chat != _key("hello")


def test_token_shares_sum_to_the_total() -> None:
    assert token_shares(10, [1, 1, 2]) == [3, 2, 5]
    assert sum(token_shares(7, [3, 5, 9, 1])) == 7
    assert token_shares(0, [4, 4]) == [0, 0]
    assert token_shares(3, [0, 0]) == [2, 1]


# -- providers ------------------------------------------------------------------------------


async def test_mock_vectors_are_deterministic_unit_vectors() -> None:
    mock = MockProvider(dimensions=16)
    response = await mock.embed(EmbeddingRequest(["a", "b", "a"]))
    assert [e.index for e in response.data] == [0, 1, 2]
    assert response.data[0].vector == response.data[2].vector == mock_vector("a", 16)
    assert math.isclose(sum(v * v for v in response.data[1].vector), 1.0)
    assert len((await mock.embed(EmbeddingRequest("a", dimensions=4))).data[0].vector) == 4


async def test_a_provider_without_embeddings_says_so() -> None:
    class ChatOnly(LLMProvider):
        def name(self) -> str:
            return "chat-only"

        async def is_available(self) -> bool:
            return True

        async def complete(self, request: LLMRequest) -> object:  # type: ignore[override]
            raise AssertionError

    with pytest.raises(UnsupportedFeature, match="chat-only"):
        await ChatOnly().embed(EmbeddingRequest("a"))
    with pytest.raises(UnsupportedFeature, match="chat-only"):
        await CachedProvider(ChatOnly()).embed(EmbeddingRequest("a"))


async def test_resilience_wrappers_pass_embeddings_through() -> None:
    flaky = MockProvider(error=ServerError(503, "busy"), fail_times=1)
    stack = FallbackProvider([CircuitBreaker(RetryingProvider(flaky)), MockProvider()])
    response = await stack.embed(EmbeddingRequest(["a"]))
    assert response.data[0].vector == mock_vector("a", 8)
    assert flaky.embed_calls == 2  # retried once, then answered


# -- the cache ------------------------------------------------------------------------------


async def test_only_missing_inputs_go_upstream_in_order() -> None:
    mock = RecordingMock()
    cache = CachedProvider(mock)
    first = await cache.embed(EmbeddingRequest(["a", "b", "c"]))
    assert first.cached == 0
    assert first.usage.prompt_tokens == 3
    result = await cache.embed_result(EmbeddingRequest(["x", "b", "y", "a", "z"]))
    assert mock.batches == [("a", "b", "c"), ("x", "y", "z")]
    response = result.response
    assert [e.index for e in response.data] == [0, 1, 2, 3, 4]
    assert response.vectors == [mock_vector(i, 8) for i in ("x", "b", "y", "a", "z")]
    assert (result.outcome, result.hits, response.cached) == ("partial", 2, 2)
    assert response.usage.prompt_tokens == 3  # only what was sent
    assert response.tokens_saved == 2
    again = await cache.embed_result(EmbeddingRequest(["z", "a"]))
    assert (again.outcome, again.response.usage.prompt_tokens) == ("hit", 0)
    assert len(mock.batches) == 2
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (4, 6, 6)
    assert stats.tokens_saved == 4


async def test_duplicates_in_one_batch_are_sent_once() -> None:
    mock = RecordingMock()
    cache = CachedProvider(mock)
    response = await cache.embed(EmbeddingRequest(["a", "b", "a"]))
    assert mock.batches == [("a", "b")]
    assert response.vectors[0] == response.vectors[2]


async def test_identical_inputs_in_flight_are_fetched_once() -> None:
    mock = RecordingMock(latency=0.05)
    cache = CachedProvider(mock)
    one, two = await asyncio.gather(
        cache.embed_result(EmbeddingRequest(["a", "b"])),
        cache.embed_result(EmbeddingRequest(["b", "c", "a"])),
    )
    assert mock.batches == [("a", "b"), ("c",)]
    assert one.outcome == "miss"
    assert (two.outcome, two.coalesced) == ("partial", 2)
    assert two.response.vectors == [mock_vector(i, 8) for i in ("b", "c", "a")]
    assert cache.stats().coalesced == 2


async def test_errors_reach_everyone_and_are_not_stored() -> None:
    mock = RecordingMock(error=ServerError(500, "boom"), fail_times=1, latency=0.02)
    cache = CachedProvider(mock)
    results = await asyncio.gather(
        cache.embed(EmbeddingRequest(["a"])),
        cache.embed(EmbeddingRequest(["a", "b"])),
        return_exceptions=True,
    )
    assert isinstance(results[0], ServerError)
    assert isinstance(results[1], LLMError)  # it joined the failed call for "a"
    assert cache.stats().entries == 1  # "b" came in its own call, which succeeded
    assert mock.batches == [("a",), ("b",)]
    again = await cache.embed_result(EmbeddingRequest(["a", "b"]))
    assert again.response.vectors[0] == mock_vector("a", 8)
    assert again.outcome == "partial"
    assert mock.batches[-1] == ("a",)
    assert cache.stats().errors == 1


async def test_cache_controls() -> None:
    mock = RecordingMock()
    cache = CachedProvider(mock)
    with pytest.raises(CacheMiss):
        await cache.embed(EmbeddingRequest(["a"], cache=CacheControl(only_if_cached=True)))
    assert mock.batches == []
    await cache.embed(EmbeddingRequest(["a"], cache=CacheControl(no_store=True)))
    assert cache.stats().entries == 0
    await cache.embed(EmbeddingRequest(["a"]))
    fresh = await cache.embed_result(EmbeddingRequest(["a"], cache=CacheControl(no_cache=True)))
    assert fresh.outcome == "bypass"
    assert len(mock.batches) == 3
    hit = await cache.embed_result(EmbeddingRequest(["a"], cache=CacheControl(only_if_cached=True)))
    assert hit.outcome == "hit"


async def test_tenants_and_dimensions_are_kept_apart() -> None:
    mock = RecordingMock()
    cache = CachedProvider(mock)
    await cache.embed(EmbeddingRequest(["a"], tenant_id="t1"))
    await cache.embed(EmbeddingRequest(["a"], tenant_id="t2"))
    await cache.embed(EmbeddingRequest(["a"], tenant_id="t1", dimensions=4))
    assert len(mock.batches) == 3


async def test_a_cancelled_caller_does_not_cancel_the_shared_call() -> None:
    mock = RecordingMock(latency=0.05)
    cache = CachedProvider(mock)
    first = asyncio.create_task(cache.embed(EmbeddingRequest(["a", "b"])))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.embed(EmbeddingRequest(["a"])))
    await asyncio.sleep(0)
    first.cancel()
    response = await second
    assert response.vectors == [mock_vector("a", 8)]
    assert mock.batches == [("a", "b")]


async def test_entries_survive_a_persistent_store(tmp_path: object) -> None:
    from vex_llm.cache.stores.sqlite import SQLiteStore

    store = SQLiteStore(f"{tmp_path}/c.db")
    try:
        mock = RecordingMock()
        cache = CachedProvider(mock, LLMCacheConfig.default(), store=store)
        await cache.embed(EmbeddingRequest(["a", "b"]))
        other = CachedProvider(RecordingMock(), store=store)
        result = await other.embed_result(EmbeddingRequest(["b", "a"]))
        assert result.outcome == "hit"
        assert result.response.vectors == [mock_vector("b", 8), mock_vector("a", 8)]
    finally:
        await store.aclose()


async def test_identical_inputs_fold_across_caches_sharing_a_store(tmp_path: object) -> None:
    """Two caches (as two processes would) over one SQLite file: each input goes upstream
    once; the inputs the other one leads are waited for under its lease."""
    from vex_llm.cache.stores.sqlite import SQLiteStore

    store = SQLiteStore(f"{tmp_path}/c.db")
    try:
        one, two = RecordingMock(latency=0.1), RecordingMock(latency=0.1)
        cache_one = CachedProvider(one, store=store)
        cache_two = CachedProvider(two, store=store)
        first = asyncio.create_task(cache_one.embed_result(EmbeddingRequest(["a", "b", "c"])))
        await one.called.wait()  # the first holds its leases and is upstream
        second = await cache_two.embed_result(EmbeddingRequest(["d", "c", "b"]))
        assert (await first).outcome == "miss"
        assert one.batches == [("a", "b", "c")]
        assert two.batches == [("d",)]
        assert (second.outcome, second.coalesced) == ("partial", 2)
        assert second.response.vectors == [mock_vector(i, 8) for i in ("d", "c", "b")]
        assert second.response.usage.prompt_tokens == 1
    finally:
        await store.aclose()
