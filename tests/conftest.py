"""Shared test fixtures: a manual clock and a cached mock provider."""

from __future__ import annotations

import pytest

from vex_llm import CachedProvider, LLMCacheConfig, MockProvider


class ManualClock:
    """A wall clock that moves only when the test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mock() -> MockProvider:
    return MockProvider.constant("cached response")


@pytest.fixture
def cached(mock: MockProvider) -> CachedProvider:
    return CachedProvider(mock, LLMCacheConfig.default())
