"""MockProvider: canned, constant and smart answers, latency, failures, call counting."""

from __future__ import annotations

import pytest

from vex_llm import LLMRequest, MockProvider, RateLimited
from vex_llm.providers.mock import smart_answer


async def test_constant_answers_and_counts_calls() -> None:
    mock = MockProvider.constant("Hello, world!")
    assert await mock.ask("test") == "Hello, world!"
    assert await mock.ask("again") == "Hello, world!"
    assert mock.calls == 2
    assert mock.name() == "mock:mock"
    assert await mock.is_available()


async def test_responses_cycle_in_order() -> None:
    mock = MockProvider(responses=["a", "b"])
    assert [await mock.ask("x") for _ in range(3)] == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("prompt", "marker"),
    [
        ("Please verify this claim", "concerns"),
        ("Critique my plan", "concerns"),
        ("Please analyze this data", "Key Findings"),
        ("Explore options", "Key Findings"),
        ("Summarize the text", "Summary:"),
        ("give me a summary", "Summary:"),
        ("hello there", 'asking about: "hello there"'),
    ],
)
async def test_smart_follows_the_keyword_rules(prompt: str, marker: str) -> None:
    assert marker in await MockProvider.smart().ask(prompt)


def test_smart_echo_cuts_at_50_characters_not_bytes() -> None:
    prompt = "ü" * 49 + "😀" + "tail"
    answer = smart_answer(prompt)
    assert f'"{"ü" * 49}😀"' in answer
    assert "tail" not in answer


async def test_error_option_fails_the_first_calls_then_answers() -> None:
    mock = MockProvider.constant("ok", error=RateLimited("slow down", 1.5), fail_times=1)
    with pytest.raises(RateLimited) as info:
        await mock.ask("x")
    assert info.value.retry_after == 1.5
    assert await mock.ask("x") == "ok"
    assert mock.calls == 2


async def test_stream_splits_the_answer_and_ends_with_usage() -> None:
    mock = MockProvider.constant("abcdefghij", chunk_size=4)
    chunks = [c async for c in mock.stream(LLMRequest(prompt="p"))]
    assert "".join(c.delta for c in chunks) == "abcdefghij"
    assert chunks[-1].is_final
    assert chunks[-1].usage is not None
    assert not any(c.is_final for c in chunks[:-1])


async def test_latency_is_awaited() -> None:
    mock = MockProvider.constant("x", latency=0.05)
    response = await mock.complete(LLMRequest(prompt="p"))
    assert response.latency_ms >= 45


def test_bad_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="constant"):
        MockProvider("text")
    with pytest.raises(ValueError, match="latency"):
        MockProvider(latency=-1)
