"""Prices: the dollars of a usage at a price, and where a model's price comes from."""

from __future__ import annotations

import math

import pytest

from vex_llm.models import Usage
from vex_llm.pricing import FREE, Price, PriceBook, catalogue_price, cost

OPENAI = "https://api.openai.com/v1"


def test_cost_is_the_hand_computation() -> None:
    # 1200 prompt tokens at $2.50/M + 300 completion tokens at $10/M = $0.003 + $0.003.
    assert cost(Price(2.5, 10.0), Usage(1200, 300)) == pytest.approx(0.006)
    assert cost(FREE, Usage(10**6, 10**6)) == 0.0
    assert cost(Price(2.5, 10.0), Usage()) == 0.0


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf, True, "1", None])
def test_a_price_is_finite_and_not_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="input_per_mtok"):
        Price(bad, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_per_mtok"):
        Price(1.0, bad)  # type: ignore[arg-type]


def test_catalogue_prices_gpt_4o_mini_as_the_package_data_says() -> None:
    # genai-prices' data for OpenAI's gpt-4o-mini: $0.15 per million input tokens, $0.60
    # per million output tokens. 1200 prompt + 300 completion tokens: by hand,
    # 1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6 = 0.00018 + 0.00018 = $0.00036.
    price = PriceBook().price("gpt-4o-mini", OPENAI)
    assert price == Price(0.15, 0.6)
    assert cost(price, Usage(1200, 300)) == pytest.approx(0.00036)
    # The provider from the URL, or from the model name alone.
    assert catalogue_price("gpt-4o-mini") == price
    assert catalogue_price("claude-3-5-haiku-latest", "https://api.anthropic.com/v1") == Price(
        0.8, 4.0
    )


def test_embedding_models_have_an_input_price_only() -> None:
    assert catalogue_price("text-embedding-3-small", OPENAI) == Price(0.02, 0.0)


def test_override_beats_the_catalogue_and_loopback() -> None:
    negotiated = Price(0.1, 0.4)
    book = PriceBook({"gpt-4o-mini": negotiated, "llama3": Price(0.01, 0.01)})
    assert book.price("gpt-4o-mini", OPENAI) == negotiated
    assert book.price("llama3", "http://127.0.0.1:11434") == Price(0.01, 0.01)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080/v1", "http://localhost:11434", "http://[::1]:9000/v1"]
)
def test_a_model_on_this_machine_is_free(base_url: str) -> None:
    # Even under a name the catalogue knows: it is served here, not by OpenAI.
    assert PriceBook().price("gpt-4o-mini", base_url) == FREE


def test_unknown_has_no_price_not_zero() -> None:
    book = PriceBook()
    assert book.price("no-such-model-anywhere", OPENAI) is None
    assert book.price("gpt-4o-mini", "https://llm.internal.example/v1") is None  # unknown host
    assert book.price("qwen2.5-0.5b-instruct") is None
    assert PriceBook(catalogue=False).price("gpt-4o-mini", OPENAI) is None


def test_a_price_is_resolved_once() -> None:
    book = PriceBook()
    first = book.price("gpt-4o-mini", OPENAI)
    assert book.price("gpt-4o-mini", OPENAI) is first  # a new Price per catalogue lookup
