"""Rate limits and budgets through the proxy's doors (in-process limiter): 429s in each
door's shape with Retry-After and x-ratelimit-* headers, hits served when the upstream is
closed to a tenant, tokens settled after JSON, streamed and embeddings answers, and the
figures in /v1/cache/stats."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN_KEY, KEY_A, KEY_B, MODEL, make_settings, serve
from vex_llm import Chunk, LLMProvider, LLMRequest, LLMResponse, MemoryStore, MockProvider
from vex_llm.errors import ServerError
from vex_llm.models import Usage
from vex_llm.pricing import Price, PriceBook, cost
from vex_llm.quota import TenantQuota
from vex_llm.server.app import create_app
from vex_llm.server.settings import TenantSettings, UpstreamSettings, hash_key

ANSWER = "a cache keeps answers"  # the mock's usage: prompt chars / 4 + 1, answer chars / 4 + 1


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def client(
    quota_a: TenantQuota, default: TenantQuota | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, MockProvider]]:
    """The proxy over a mock, in this process; tenant A has ``quota_a``, B the default."""
    settings = make_settings(
        tenants=(
            TenantSettings("tenant-a", (hash_key(KEY_A),), quota_a),
            TenantSettings("tenant-b", (hash_key(KEY_B),)),
        ),
        quota=default or TenantQuota(),
    )
    provider = MockProvider.constant(ANSWER)
    app = create_app(settings, {MODEL: provider}, MemoryStore(100, 1 << 20))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy/v1") as raw:
        yield raw, provider


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


async def test_requests_over_the_limit_get_openai_429s_and_every_answer_has_the_headers() -> None:
    async with client(TenantQuota(requests_per_minute=3)) as (raw, _):
        answers = [
            await raw.post("/chat/completions", json=chat("same"), headers=bearer(KEY_A))
            for _ in range(4)
        ]
        other = await raw.post("/chat/completions", json=chat("same"), headers=bearer(KEY_B))
        metrics = (await raw.get("http://proxy/metrics")).text
    assert 'vex_llm_quota_refused_total{reason="requests",tenant="tenant-a"} 1.0' in metrics
    assert "vex_llm_quota_store_errors_total 0.0" in metrics
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-vex-cache") for a in answers[:3]] == ["miss", "hit", "hit"]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert "x-ratelimit-limit-tokens" not in answer.headers  # not limited: not sent
    refused = answers[3]
    assert refused.headers["retry-after"] == "20"
    # The SDKs read the milliseconds first: about 20 s, to the millisecond.
    assert 19_000 < int(refused.headers["retry-after-ms"]) <= 20_000
    assert re.fullmatch(r"59\.\d+s|1m0s", refused.headers["x-ratelimit-reset-requests"])
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "Limit 3" in error["message"]
    # Tenant B has no quota: its answers are as before, without limit headers.
    assert other.status_code == 200
    assert not [h for h in other.headers if h.startswith("x-ratelimit")]


async def test_the_messages_door_refuses_in_anthropics_shape() -> None:
    body = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    async with client(TenantQuota(requests_per_minute=1)) as (raw, _):
        first = await raw.post("/messages", json=body, headers={"x-api-key": KEY_A})
        second = await raw.post("/messages", json=body, headers={"x-api-key": KEY_A})
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["type"] == "error"
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert second.headers["retry-after"] == "60"
    # Anthropic's headers, its reset an RFC 3339 time about a minute ahead; not OpenAI's.
    assert first.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(second.headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None
    assert 50 <= (reset - datetime.now(UTC)).total_seconds() <= 61
    assert not [h for h in second.headers if h.startswith("x-ratelimit")]


async def test_tokens_are_settled_with_the_real_usage_after_json_and_stream_answers() -> None:
    async with client(TenantQuota(tokens_per_minute=1000)) as (raw, provider):
        answer = await raw.post(
            "/chat/completions", json=chat("count me", max_tokens=500), headers=bearer(KEY_A)
        )
        usage = answer.json()["usage"]
        # Reserved ~ body/4 + 500 before the call; after it, only what was used (give or
        # take the refill meanwhile: one token per 60 ms).
        left = int(answer.headers["x-ratelimit-remaining-tokens"])
        assert 1000 - usage["total_tokens"] <= left <= 1000 - usage["total_tokens"] + 20
        hit = await raw.post(
            "/chat/completions", json=chat("count me", max_tokens=500), headers=bearer(KEY_A)
        )
        assert hit.headers["x-vex-cache"] == "hit"  # a hit is free in tokens
        assert left <= int(hit.headers["x-ratelimit-remaining-tokens"]) <= left + 50
        body = chat("stream me", stream=True, stream_options={"include_usage": True})
        async with raw.stream("POST", "/chat/completions", json=body, headers=bearer(KEY_A)) as s:
            assert s.status_code == 200
            # Headers leave before the answer: the reservation shows there.
            assert int(s.headers["x-ratelimit-remaining-tokens"]) < left
            events = [line async for line in s.aiter_lines() if line.startswith("data: {")]
        streamed = json.loads(events[-1][6:])["usage"]["total_tokens"]
        stats = (await raw.get("/cache/stats", headers=bearer(KEY_A))).json()
    tokens = stats["limits"]["tokens"]
    assert tokens["limit"] == 1000
    # Settled at the stream's end: both answers' real usage (plus the refill since).
    used = usage["total_tokens"] + streamed
    assert 1000 - used <= tokens["remaining"] <= 1000 - used + 50
    assert stats["limits"]["requests"] is None
    assert stats["budget"] == {"daily": None, "monthly": None}
    assert provider.calls == 2


async def test_over_the_token_limit_hits_are_served_and_misses_refused() -> None:
    async with client(TenantQuota(tokens_per_minute=300)) as (raw, provider):
        stored = await raw.post("/chat/completions", json=chat("kept"), headers=bearer(KEY_A))
        assert stored.status_code == 200
        big = chat("big", max_tokens=299)  # ~ 318 tokens: more than the ~296 left
        refused = await raw.post("/chat/completions", json=big, headers=bearer(KEY_A))
        hit = await raw.post("/chat/completions", json=chat("kept"), headers=bearer(KEY_A))
        fresh = await raw.post(
            "/chat/completions",
            json=chat("kept", max_tokens=299),
            headers={**bearer(KEY_A), "cache-control": "no-cache"},
        )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1
    assert "x-ratelimit-remaining-tokens" in refused.headers
    assert (hit.status_code, hit.headers["x-vex-cache"]) == (200, "hit")
    assert fresh.status_code == 429  # no-cache needs the upstream
    assert provider.calls == 1


async def test_embeddings_settle_with_the_prompt_tokens_sent() -> None:
    async with client(TenantQuota(tokens_per_minute=1000, requests_per_minute=3)) as (
        raw,
        provider,
    ):
        body = {"model": MODEL, "input": ["first input", "second input"]}
        miss = await raw.post("/embeddings", json=body, headers=bearer(KEY_A))
        hit = await raw.post("/embeddings", json=body, headers=bearer(KEY_A))
    assert miss.status_code == hit.status_code == 200
    sent = miss.json()["usage"]["prompt_tokens"]
    assert sent > 0
    assert 1000 - sent <= int(miss.headers["x-ratelimit-remaining-tokens"]) <= 1000 - sent + 10
    assert hit.headers["x-vex-cache"] == "hit"
    assert int(hit.headers["x-ratelimit-remaining-tokens"]) >= 1000 - sent
    assert hit.headers["x-ratelimit-remaining-requests"] == "1"
    assert provider.embed_calls == 1


async def test_the_admin_sees_every_limited_tenants_figures() -> None:
    default = TenantQuota(requests_per_minute=50)
    async with client(TenantQuota(requests_per_minute=5), default) as (raw, _):
        await raw.post("/chat/completions", json=chat("x"), headers=bearer(KEY_A))
        admin = (await raw.get("/cache/stats", headers=bearer(ADMIN_KEY))).json()
    a, b = admin["tenants"]["tenant-a"], admin["tenants"]["tenant-b"]
    assert a["limits"]["requests"]["limit"] == 5
    assert a["limits"]["requests"]["remaining"] == 4
    assert 0 < a["limits"]["requests"]["reset_seconds"] <= 12
    assert a["misses"] == 1
    # B made no request yet: its (default) limits show, with zero counters.
    assert b["limits"]["requests"] == {"limit": 50, "remaining": 50, "reset_seconds": 0.0}
    assert (b["hits"], b["misses"]) == (0, 0)


async def test_a_tenant_crossing_its_budget_mid_run_gets_insufficient_quota_alone() -> None:
    base_url = "https://api.openai.com/v1"
    price = PriceBook().price("gpt-4o-mini", base_url)  # the catalogue's, as the proxy's
    assert price is not None
    per_answer = cost(price, Usage(prompt_tokens=3, completion_tokens=6))  # the mock's usage
    budget = TenantQuota(daily_budget_usd=per_answer * 2.5)
    upstream = UpstreamSettings(MODEL, "openai", base_url, "gpt-4o-mini", "OPENAI_API_KEY")
    settings = make_settings(upstreams=(upstream,), quota=budget)
    provider = MockProvider.constant(ANSWER)
    app = create_app(settings, {MODEL: provider}, MemoryStore(100, 1 << 20))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy/v1") as raw:
        answers = [
            await raw.post("/chat/completions", json=chat(f"question {i}"), headers=bearer(KEY_A))
            for i in range(5)
        ]
        again = await raw.post("/chat/completions", json=chat("question 0"), headers=bearer(KEY_A))
        other = await raw.post("/chat/completions", json=chat("question 9"), headers=bearer(KEY_B))
        stats = (await raw.get("/cache/stats", headers=bearer(KEY_A))).json()
    assert [a.json()["usage"]["total_tokens"] for a in answers[:3]] == [9, 9, 9]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    error = answers[3].json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert 1 <= int(answers[3].headers["retry-after"]) <= 86400
    assert (again.status_code, again.headers["x-vex-cache"]) == (200, "hit")  # still served
    assert other.status_code == 200  # tenant B has its own budget
    assert provider.calls == 4
    daily = stats["budget"]["daily"]
    assert daily["limit_usd"] == pytest.approx(per_answer * 2.5)
    assert daily["spent_usd"] == pytest.approx(per_answer * 3, rel=1e-6)
    assert stats["budget"]["monthly"] is None


async def test_the_official_sdks_give_up_at_once_on_a_spent_budget() -> None:
    """A spent budget's Retry-After is hours away; the SDKs retry 429s and Anthropic's sleeps
    the whole Retry-After first. ``x-should-retry: false`` makes both raise at once."""
    import anthropic
    import openai

    settings = make_settings(
        tenants=(TenantSettings("tenant-a", (hash_key(KEY_A),), TenantQuota(daily_budget_usd=0)),)
    )
    provider = MockProvider.constant(ANSWER)
    app = create_app(settings, {MODEL: provider}, MemoryStore(100, 1 << 20))
    hi = [{"role": "user", "content": "hi"}]
    async with serve(app) as root:  # the SDKs bring their own HTTP stack: a real socket
        oa = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=KEY_A)  # default retries
        an = anthropic.AsyncAnthropic(base_url=root, api_key=KEY_A)
        async with oa, an:
            with pytest.raises(openai.RateLimitError) as oa_error:
                await asyncio.wait_for(oa.chat.completions.create(model=MODEL, messages=hi), 5)
            with pytest.raises(anthropic.RateLimitError) as an_error:
                await asyncio.wait_for(
                    an.messages.create(model=MODEL, max_tokens=16, messages=hi), 5
                )
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{root}/metrics")).text
    assert oa_error.value.code == "insufficient_quota"
    assert an_error.value.response.headers["x-should-retry"] == "false"
    assert int(an_error.value.response.headers["retry-after"]) > 0
    # One attempt each, not three: the SDKs did not retry.
    assert 'vex_llm_quota_refused_total{reason="daily_budget",tenant="tenant-a"} 2.0' in metrics
    assert provider.calls == 0


class Dribble(LLMProvider):
    """Streams ``pieces``, then hangs (a long answer still being written) or, with
    ``fail``, breaks off with a 500."""

    def __init__(self, pieces: list[str], fail: bool = False) -> None:
        self.pieces, self.fail = pieces, fail

    def name(self) -> str:
        return "dribble"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError("streams only")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        for piece in self.pieces:
            yield Chunk(piece, model="dribble")
        if self.fail:
            raise ServerError(500, "upstream died")
        await asyncio.Event().wait()  # until the proxy gives up on it
        yield Chunk("never")  # pragma: no cover


@pytest.mark.parametrize("fail", [False, True], ids=["client-left", "upstream-failed"])
async def test_a_stream_that_breaks_off_is_charged_to_the_budget(fail: bool) -> None:
    """A stream without its final event (the client left, or the upstream died mid-way) was
    still made upstream and billed: the budget and the dollars spent are charged its estimate
    (body bytes / 4 of prompt, the text sent / 4 of completion), not nothing."""
    price = Price(1_000_000.0, 2_000_000.0)  # $1 per prompt token, $2 per completion token
    settings = make_settings(
        upstream={"price": price},
        tenants=(
            TenantSettings("tenant-a", (hash_key(KEY_A),), TenantQuota(daily_budget_usd=1e6)),
        ),
    )
    pieces = ["x" * 40] * 3  # 120 characters: 30 completion tokens
    app = create_app(settings, {MODEL: Dribble(pieces, fail)}, MemoryStore(100, 1 << 20))
    request = chat("tell me a long story", stream=True)
    prompt = math.ceil(len(json.dumps(request).encode()) / 4)
    async with serve(app) as root, httpx.AsyncClient(base_url=f"{root}/v1") as http:
        async with http.stream(
            "POST", "/chat/completions", content=json.dumps(request), headers=bearer(KEY_A)
        ) as answer:
            seen, error = "", None
            async for line in answer.aiter_lines():
                event = json.loads(line[6:]) if line.startswith("data: {") else {}
                if "error" in event:
                    error = event["error"]["message"]
                    break
                if event:
                    seen += event["choices"][0]["delta"].get("content") or ""
                if len(seen) == 120 and not fail:
                    break  # the client leaves
            assert len(seen) == 120
            assert (error is not None) == fail
        spent, dollars = 0.0, 0.0
        async with asyncio.timeout(10):  # the proxy notices the client left: a moment
            while not (spent and dollars):
                stats = (await http.get("/cache/stats", headers=bearer(KEY_A))).json()
                spent, dollars = stats["budget"]["daily"]["spent_usd"], stats["dollars_spent"]
                await asyncio.sleep(0.01)
    assert spent == pytest.approx(prompt * 1.0 + 30 * 2.0)
    assert dollars == pytest.approx(spent)  # the money figures say so too
