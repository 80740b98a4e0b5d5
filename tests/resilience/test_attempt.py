"""with_timeout: an attempt's request is the request with the time left, nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from vex_llm import EmbeddingRequest, LLMRequest, Message
from vex_llm.chat import Tool
from vex_llm.resilience.attempt import with_timeout


@pytest.mark.parametrize(
    "request_",
    [
        LLMRequest(prompt="hi", temperature=0.2, tenant_id="t", timeout=30),
        LLMRequest(
            messages=(Message("user", "weather?"),),
            tools=(Tool.function("weather", {"type": "object"}, "the weather"),),
            max_tokens=9,
        ),
        EmbeddingRequest(inputs=("a", "b"), model="e"),
    ],
)
def test_it_equals_a_rebuilt_request_with_that_timeout(
    request_: LLMRequest | EmbeddingRequest,
) -> None:
    attempt = with_timeout(request_, 2.5)
    assert attempt == dataclasses.replace(request_, timeout=2.5)
    assert attempt.timeout == 2.5
    assert type(attempt) is type(request_)
    assert request_.timeout != 2.5  # the original is untouched
    if isinstance(request_, LLMRequest):
        assert attempt.plain == request_.plain  # the fields outside __init__ too


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "5", None])
def test_the_timeout_is_checked(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="timeout"):
        with_timeout(LLMRequest(prompt="hi"), bad)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class _NotedRequest(LLMRequest):
    note: str = ""


@dataclasses.dataclass(frozen=True)
class _LooseRequest(LLMRequest):
    note: str = ""


@pytest.mark.parametrize("kind", [_NotedRequest, _LooseRequest])
def test_a_subclass_keeps_every_field(kind: type[LLMRequest]) -> None:
    # Its own __slots__ name only its own fields (or there are none): the base's must come too.
    request_ = kind(prompt="hi", temperature=0.5, note="kept")  # type: ignore[call-arg]
    attempt = with_timeout(request_, 2.5)
    assert attempt == dataclasses.replace(request_, timeout=2.5)
    assert (attempt.prompt, attempt.temperature, attempt.timeout) == ("hi", 0.5, 2.5)
    assert type(attempt) is kind
