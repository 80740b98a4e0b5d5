"""Dollars through the proxy: prices from the config or the catalogue, spent on a miss, saved
on a hit (JSON, stream, embeddings), in /metrics and /v1/cache/stats; unpriced said so."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import tomllib
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.server.conftest import ADMIN_KEY, KEY_A, MODEL, make_settings, proxy
from vex_llm import MockProvider
from vex_llm.cli import main
from vex_llm.models import Usage
from vex_llm.pricing import FREE, Price, PriceBook
from vex_llm.server.config_file import settings_from_document
from vex_llm.server.money import NOTHING, Dollars, answer_dollars, embedding_dollars
from vex_llm.server.settings import Settings, UpstreamSettings
from vex_llm.server.upstreams import upstream_prices

OPENAI = "https://api.openai.com/v1"
A = {"Authorization": f"Bearer {KEY_A}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def gpt_4o_mini_by_hand(prompt_tokens: int, completion_tokens: int) -> float:
    # genai-prices' gpt-4o-mini at OpenAI: $0.15 / M input tokens, $0.60 / M output tokens.
    return prompt_tokens * 0.15 / 1e6 + completion_tokens * 0.60 / 1e6


def metric(text: str, name: str, model: str = MODEL) -> float:
    prefix = f'{name}{{model="{model}",tenant="tenant-a"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (name, text)
    return float(lines[0][len(prefix) :])


def test_an_answer_spends_on_a_miss_and_saves_on_a_hit() -> None:
    price, usage = Price(1.0, 2.0), Usage(1000, 500)  # $0.001 + $0.001
    assert answer_dollars(price, "miss", usage) == Dollars(0.002, 0.0)
    assert answer_dollars(price, "bypass", usage) == Dollars(0.002, 0.0)
    assert answer_dollars(price, "hit", usage) == Dollars(0.0, 0.002)
    assert answer_dollars(price, "coalesced", usage) == Dollars(0.0, 0.002)
    assert answer_dollars(price, "stale", usage) == NOTHING
    assert answer_dollars(None, "miss", usage) is None
    # Embeddings: 3000 tokens sent, 1000 from the cache, at $1/M input.
    assert embedding_dollars(price, Usage(3000), 1000) == Dollars(0.003, 0.001)


def test_the_configured_price_beats_the_catalogue_and_loopback() -> None:
    upstreams = [
        UpstreamSettings("gpt", "openai", OPENAI, "gpt-4o-mini"),
        UpstreamSettings("mine", "openai", OPENAI, "gpt-4o-mini", price=Price(0.1, 0.2)),
        UpstreamSettings("here", "ollama", "http://localhost:11434", "llama3"),
        UpstreamSettings("lan", "ollama", "http://10.1.2.3:11434", "llama3"),
    ]
    assert upstream_prices(upstreams, PriceBook()) == {
        "gpt": Price(0.15, 0.6),
        "mine": Price(0.1, 0.2),
        "here": FREE,
        "lan": None,
    }


def at(base_url: str, model: str) -> Settings:
    """The test settings with the upstream ``model`` at ``base_url`` (the mock answers)."""
    settings = make_settings()
    upstream = dataclasses.replace(settings.upstreams[0], base_url=base_url, model=model)
    return dataclasses.replace(settings, upstreams=(upstream,))


def load(price: str) -> tuple[Any, list[str]]:
    doc = tomllib.loads(
        f"""
        [server]
        open_tenant = "local"
        [upstreams.m]
        base_url = "http://10.0.0.1/v1"
        price = {price}
        """
    )
    settings, problems = settings_from_document(doc, {}, "f.toml")
    return settings, [str(p) for p in problems]


def test_a_price_in_the_config_file() -> None:
    settings, problems = load("{ input_per_mtok = 0.5, output_per_mtok = 1 }")
    assert problems == []
    assert settings.upstreams[0].price == Price(0.5, 1.0)


@pytest.mark.parametrize(
    ("price", "fragment"),
    [
        ("{ input_per_mtok = -1, output_per_mtok = 1 }", "price: input_per_mtok must be finite"),
        ("{ input_per_mtok = nan, output_per_mtok = 1 }", "price: input_per_mtok must be finite"),
        ("{ input_per_mtok = 1, output_per_mtok = inf }", "price: output_per_mtok must be"),
        ("{ input_per_mtok = 1 }", "price.output_per_mtok: is required"),
        ("{ input_per_mtok = 1, output_per_mtok = 1, cached = 1 }", "price.cached: unknown"),
        ('{ input_per_mtok = "1", output_per_mtok = 1 }', "price.input_per_mtok: must be"),
        ("0.15", "upstreams.m.price: must be a table"),
    ],
)
def test_a_bad_price_is_a_problem(price: str, fragment: str) -> None:
    settings, problems = load(price)
    assert settings is None
    assert any(fragment in p for p in problems), problems


async def test_spent_and_saved_through_the_proxy_equal_a_hand_computation() -> None:
    # The upstream's settings say OpenAI's gpt-4o-mini: the catalogue prices it.
    settings = at(OPENAI, "gpt-4o-mini")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "What does a cache do?"}]}
    embed = {"model": MODEL, "input": ["one two three", "four five six"]}
    async with (
        proxy(MockProvider.constant("It keeps answers."), settings) as base,
        httpx.AsyncClient(base_url=base) as raw,
    ):
        miss = await raw.post("/chat/completions", json=chat, headers=A)
        hit = await raw.post("/chat/completions", json=chat, headers=A)
        async with raw.stream(
            "POST", "/chat/completions", json={**chat, "stream": True}, headers=A
        ) as streamed:
            await streamed.aread()
        embed_miss = await raw.post("/embeddings", json=embed, headers=A)
        embed_hit = await raw.post("/embeddings", json=embed, headers=A)
        metrics = (await raw.get(base.removesuffix("/v1") + "/metrics")).text
        mine = (await raw.get("/cache/stats", headers=A)).json()
        admin = (await raw.get("/cache/stats", headers=ADMIN)).json()
        # The CLI is synchronous: off the loop, so the server can answer it.
        printed = await asyncio.to_thread(
            CliRunner(env={"VEX_LLM_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "200"}).invoke,
            main,
            ["cache", "stats", "--server", base.removesuffix("/v1")],
        )
        refused = await asyncio.to_thread(
            CliRunner(env={"VEX_LLM_ADMIN_KEY": "sk-wrong-000000"}).invoke,
            main,
            ["cache", "stats", "--server", base],
        )
    assert [r.headers["x-vex-cache"] for r in (miss, hit, streamed, embed_miss, embed_hit)] == [
        "miss",
        "hit",
        "hit",
        "miss",
        "hit",
    ]
    usage = miss.json()["usage"]
    one = gpt_4o_mini_by_hand(usage["prompt_tokens"], usage["completion_tokens"])
    embedded = embed_miss.json()["usage"]["prompt_tokens"]
    spent = one + gpt_4o_mini_by_hand(embedded, 0)
    saved = 2 * one + gpt_4o_mini_by_hand(embedded, 0)
    assert one > 0
    assert embedded > 0
    assert metric(metrics, "vex_llm_dollars_spent_total") == pytest.approx(spent)
    assert metric(metrics, "vex_llm_dollars_saved_total") == pytest.approx(saved)
    for figures in (mine, mine["models"][MODEL], admin["tenants"]["tenant-a"]):
        assert figures["dollars_spent"] == pytest.approx(spent)
        assert figures["dollars_saved"] == pytest.approx(saved)
        assert figures["unpriced"] == 0
    # The cache's own counters (per upstream call) agree; so do the admin's totals.
    for figures in (admin, admin["models"][MODEL]):
        assert figures["dollars_spent"] == pytest.approx(spent)
        assert figures["dollars_saved"] == pytest.approx(saved)
    assert printed.exit_code == 0, printed.output
    tenant_row = next(line for line in printed.output.splitlines() if "tenant-a" in line)
    assert f"${spent:,.6f}" in tenant_row
    assert f"${saved:,.6f}" in tenant_row
    assert "(cache)" in printed.output
    assert refused.exit_code == 1
    assert "401" in refused.output
    assert "sk-wrong" not in refused.output


async def test_an_unpriced_upstream_is_counted_as_such_never_as_free() -> None:
    settings = at("https://llm.internal.example/v1", "gpt-4o-mini")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        proxy(MockProvider.constant("x"), settings) as base,
        httpx.AsyncClient(base_url=base) as raw,
    ):
        for _ in range(2):
            await raw.post("/chat/completions", json=chat, headers=A)
        metrics = (await raw.get(base.removesuffix("/v1") + "/metrics")).text
        mine = (await raw.get("/cache/stats", headers=A)).json()
        admin = (await raw.get("/cache/stats", headers=ADMIN)).json()
    assert metric(metrics, "vex_llm_unpriced_answers_total") == 2
    assert "vex_llm_dollars_spent_total{" not in metrics
    assert (mine["unpriced"], mine["dollars_spent"], mine["dollars_saved"]) == (2, 0.0, 0.0)
    assert admin["models"][MODEL]["dollars_spent"] is None
    assert not math.isnan(admin["dollars_spent"])
