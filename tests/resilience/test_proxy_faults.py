"""The proxy in front of fault-injecting upstreams on 127.0.0.1: retries within the budget,
Retry-After, a hung upstream, a hard outage opening and closing the breaker, fallbacks.

Delays and windows are scaled down (tens of milliseconds) so the suite stays fast; the
assertions are about counts and order, with generous timing margins.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ManualClock
from tests.resilience.faulty_upstream import FaultyUpstream
from tests.server.conftest import KEY_A, make_settings, serve
from vex_llm import LLMCacheConfig, MemoryStore
from vex_llm.resilience import BreakerPolicy, RetryPolicy
from vex_llm.server.app import create_app
from vex_llm.server.settings import UpstreamSettings

AUTH = {"Authorization": f"Bearer {KEY_A}"}
FAST_RETRY = RetryPolicy(base_delay=0.005, max_delay=0.02)
QUICK_BREAKER = BreakerPolicy(min_calls=4, failure_rate=0.5, window=10.0, open_for=0.4)
CACHE = LLMCacheConfig(ttl=60, tti=None)


@contextlib.asynccontextmanager
async def proxied(
    upstreams: Mapping[str, FaultyUpstream],
    *,
    clock: Callable[[], float] = time.time,
    **options: Mapping[str, Any],
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The proxy serving each fake as an upstream of that name; ``options[name]`` sets more
    of its ``UpstreamSettings``; ``clock`` stamps cache entries. Yields a client on ``/v1``
    (tenant A) and the root URL."""
    async with contextlib.AsyncExitStack() as stack:
        settings = []
        for name, fake in upstreams.items():
            url = await stack.enter_async_context(serve(fake.app))
            fields: dict[str, Any] = {
                "timeout": 2.0,
                "retry": FAST_RETRY,
                "breaker": QUICK_BREAKER,
                **options.get(name, {}),
            }
            settings.append(UpstreamSettings(name, "openai", url + "/v1", name, **fields))
        app = create_app(
            make_settings(upstreams=tuple(settings), cache=CACHE),
            store=MemoryStore(1000),
            clock=clock,
        )
        root = await stack.enter_async_context(serve(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=root + "/v1", headers=AUTH, timeout=10)
        )
        yield client, root


def ask(text: str, model: str = "primary", stream: bool = False) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


async def breaker_lets_through(root: str) -> None:
    """Wait (at most 10 s) until primary's breaker is no longer open, per ``/readyz``."""
    async with httpx.AsyncClient() as raw, asyncio.timeout(10):
        while True:
            if (await raw.get(root + "/readyz")).json()["breakers"]["primary"] != "open":
                return
            await asyncio.sleep(0.05)


async def metrics(root: str) -> str:
    async with httpx.AsyncClient() as raw:
        return (await raw.get(root + "/metrics")).text


@pytest.mark.parametrize(("ratio", "least_ok"), [(0.2, 0.8), (0.5, 0.9)])
async def test_a_30_percent_5xx_rate_is_retried_within_the_budget(
    ratio: float, least_ok: float
) -> None:
    """A 20% budget (the default) rations retries at a 30% failure rate; 50% covers it."""
    fake = FaultyUpstream(seed=7)
    fake.mode = "flaky"
    requests = 100
    retry = RetryPolicy(base_delay=0.005, max_delay=0.02, budget_ratio=ratio)
    # The default breaker: a 30% failure rate is no outage, and must not open it.
    options = {"retry": retry, "breaker": BreakerPolicy()}
    async with proxied({"primary": fake}, primary=options) as (c, root):
        statuses = [
            (await c.post("/chat/completions", json=ask(f"q{i}"))).status_code
            for i in range(requests)
        ]
        text = await metrics(root)
    ok = statuses.count(200)
    # The budget: ``ratio`` of the requests plus a reserve of 1/s over a 10 s window.
    assert fake.total <= requests + ratio * requests + 10
    assert ok >= least_ok * requests, statuses
    assert set(statuses) <= {200, 502}
    assert fake.calls["5xx"] >= 0.2 * requests  # the faults really happened
    retries = fake.total - requests
    assert f'vex_llm_upstream_retries_total{{upstream="primary"}} {retries}.0' in text
    assert 'vex_llm_upstream_breaker_opened_total{upstream="primary"} 0.0' in text


async def test_the_budget_keeps_retries_from_multiplying_an_outage() -> None:
    fake = FaultyUpstream()
    fake.mode = "down"
    retry = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.002, budget_ratio=0.1,
                        budget_min_per_second=0.5)  # fmt: skip
    async with proxied({"primary": fake}, primary={"retry": retry, "breaker": None}) as (c, r):
        for i in range(60):
            assert (await c.post("/chat/completions", json=ask(f"q{i}"))).status_code == 502
        text = await metrics(r)
    # Without a budget: 5 calls per request (300). With it: 60 + 10% + a reserve of 5.
    assert fake.total <= 60 + 6 + 5
    assert 'vex_llm_upstream_retry_budget_exhausted_total{upstream="primary"}' in text


async def test_a_429_burst_is_waited_out_as_its_retry_after_asks() -> None:
    fake = FaultyUpstream()
    fake.burst_429(2, "0.2")
    async with proxied({"primary": fake}) as (c, _):
        started = time.perf_counter()
        response = await c.post("/chat/completions", json=ask("hello"))
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "v1: hello"
    assert fake.calls == {"429": 2, "ok": 1}
    assert elapsed >= 0.4  # both waits were honoured, not shortened by backoff


async def test_retry_after_as_an_http_date_and_on_a_503() -> None:
    fake = FaultyUpstream()
    fake.burst_429(1, email.utils.formatdate(time.time() + 1, usegmt=True))
    async with proxied({"primary": fake}) as (c, _):
        assert (await c.post("/chat/completions", json=ask("a"))).status_code == 200
        assert fake.calls == {"429": 1, "ok": 1}
        fake.mode, fake.down_retry_after = "down", "0.2"
        task = asyncio.create_task(c.post("/chat/completions", json=ask("b")))
        async with asyncio.timeout(5):
            await fake.failed.wait()
        fake.mode = "ok"  # back before the 0.2 s the 503 asked for are over
        response = await task
    assert response.status_code == 200
    assert fake.calls == {"429": 1, "5xx": 1, "ok": 2}


async def test_a_retry_after_past_the_deadline_is_passed_on_at_once() -> None:
    fake = FaultyUpstream()
    fake.burst_429(3, "120")
    async with proxied({"primary": fake}) as (c, _):
        started = time.perf_counter()
        response = await c.post("/chat/completions", json=ask("hello"))
        elapsed = time.perf_counter() - started
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"  # the proxy's retry_after_cap
    assert fake.calls == {"429": 1}
    assert elapsed < 1.0


async def test_a_hung_upstream_times_out_without_retries_or_falls_back() -> None:
    hung, backup = FaultyUpstream(), FaultyUpstream(tag="backup")
    hung.mode = "hung"
    async with proxied({"primary": hung}, primary={"timeout": 0.3}) as (c, _):
        started = time.perf_counter()
        alone = await c.post("/chat/completions", json=ask("hello"))
        elapsed = time.perf_counter() - started
        hung.release()  # let the upstream's handler end, so its server stops at once
    assert alone.status_code == 504
    assert 0.3 <= elapsed < 1.5
    assert hung.calls == {"hung": 1}  # timeouts are not retried by default
    hung = FaultyUpstream()
    hung.mode = "hung"
    options = {"timeout": 0.3, "fallbacks": ("backup",)}
    async with proxied({"primary": hung, "backup": backup}, primary=options) as (c, _):
        covered = await c.post("/chat/completions", json=ask("hello"))
        hung.release()
    assert covered.status_code == 200
    assert covered.headers["x-vex-upstream"] == "backup"
    assert covered.json()["choices"][0]["message"]["content"] == "backup: hello"


async def test_a_hard_outage_opens_the_breaker_then_a_probe_closes_it() -> None:
    fake = FaultyUpstream()
    fake.mode = "down"
    # Open long enough that the checks below all see it open on a loaded machine.
    breaker = dataclasses.replace(QUICK_BREAKER, open_for=1.5)
    async with proxied({"primary": fake}, primary={"retry": None, "breaker": breaker}) as (
        c,
        root,
    ):
        failures = [await c.post("/chat/completions", json=ask(f"q{i}")) for i in range(4)]
        assert [r.status_code for r in failures] == [502] * 4
        opened_at = time.perf_counter()
        calls = fake.total
        fast = [await c.post("/chat/completions", json=ask(f"f{i}")) for i in range(5)]
        assert [r.status_code for r in fast] == [503] * 5
        assert fake.total == calls  # an open breaker fails fast: no upstream call
        assert fast[0].headers["retry-after"] == "2"  # 1.5 s, rounded up
        assert fast[0].json()["error"]["code"] == "unavailable"
        async with httpx.AsyncClient() as raw:
            ready = await raw.get(root + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["breakers"] == {"primary": "open"}
        assert 'vex_llm_upstream_breaker_state{state="open",upstream="primary"} 1.0' in (
            await metrics(root)
        )
        fake.mode = "ok"
        await asyncio.sleep(max(0.0, 1.55 - (time.perf_counter() - opened_at)))
        probe = await c.post("/chat/completions", json=ask("probe"))
        assert probe.status_code == 200
        assert fake.total == calls + 1
        async with httpx.AsyncClient() as raw:
            ready = await raw.get(root + "/readyz")
        assert ready.json()["breakers"] == {"primary": "closed"}
        text = await metrics(root)
    assert 'vex_llm_upstream_breaker_opened_total{upstream="primary"} 1.0' in text
    assert 'vex_llm_upstream_breaker_rejected_total{upstream="primary"} 5.0' in text


async def test_fallback_answers_and_is_never_stored_as_the_primarys() -> None:
    primary, backup = FaultyUpstream(tag="primary"), FaultyUpstream(tag="backup")
    primary.mode = "down"
    async with proxied(
        {"primary": primary, "backup": backup}, primary={"fallbacks": ("backup",)}
    ) as (c, root):
        covered = await c.post("/chat/completions", json=ask("hello"))
        assert covered.status_code == 200
        assert covered.headers["x-vex-upstream"] == "backup"
        assert covered.json()["choices"][0]["message"]["content"] == "backup: hello"
        # Stored as backup's answer: asking backup directly is a hit.
        direct = await c.post("/chat/completions", json=ask("hello", model="backup"))
        assert direct.headers["x-vex-cache"] == "hit"
        assert direct.headers["x-vex-upstream"] == "backup"
        primary.mode = "ok"
        again = await c.post("/chat/completions", json=ask("hello"))
        assert again.headers["x-vex-upstream"] == "primary"
        assert again.headers["x-vex-cache"] == "miss"
        assert again.json()["choices"][0]["message"]["content"] == "primary: hello"
        text = await metrics(root)
    assert 'vex_llm_fallbacks_total{model="primary",upstream="backup"} 1.0' in text


async def test_fallback_with_the_official_openai_client_and_a_stream() -> None:
    primary, backup = FaultyUpstream(tag="primary"), FaultyUpstream(tag="backup")
    primary.mode = "down"
    async with proxied(
        {"primary": primary, "backup": backup}, primary={"fallbacks": ("backup",)}
    ) as (_, root):
        client = openai.AsyncOpenAI(base_url=root + "/v1", api_key=KEY_A, max_retries=0)
        raw = await client.chat.completions.with_raw_response.create(
            model="primary", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        deltas = [e.choices[0].delta.content async for e in raw.parse() if e.choices]
        await client.close()
    assert raw.headers["x-vex-upstream"] == "backup"
    assert "".join(filter(None, deltas)) == "backup: hi"


async def test_a_stream_is_retried_before_its_first_chunk_never_after() -> None:
    fake = FaultyUpstream()
    fake.burst_429(1, "0.01")
    async with proxied({"primary": fake}) as (c, _):
        async with c.stream("POST", "/chat/completions", json=ask("a", stream=True)) as r:
            body = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        assert r.status_code == 200
        assert body[-1] == "data: [DONE]"
        assert fake.calls == {"429": 1, "ok": 1}
        fake.cut_after_first = True
        async with c.stream("POST", "/chat/completions", json=ask("b", stream=True)) as r:
            body = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        assert "data: [DONE]" not in body
        assert "error" in json.loads(body[-1][6:])
    assert fake.calls == {"429": 1, "ok": 2}  # the cut stream was not tried again


@pytest.mark.parametrize("retry", [None, FAST_RETRY])
async def test_a_4xx_is_never_retried(retry: RetryPolicy | None) -> None:
    fake = FaultyUpstream()
    async with proxied({"primary": fake}, primary={"retry": retry}) as (c, _):
        response = await c.post(
            "/chat/completions", json={**ask("x"), "temperature": 2.5}
        )  # refused by the proxy itself: 400, and nothing reaches the upstream
    assert response.status_code == 400
    assert fake.total == 0


async def test_an_outage_is_answered_stale_where_allowed_and_fresh_after_it() -> None:
    clock = ManualClock()
    fake = FaultyUpstream(tag="v1")
    async with proxied({"primary": fake}, clock=clock, primary={"stale_if_error": 3600}) as (
        c,
        root,
    ):
        questions = [f"q{i}" for i in range(5)]
        for q in questions:
            assert (await c.post("/chat/completions", json=ask(q))).status_code == 200
        clock.advance(100)  # every entry is past its 60 s ttl, within the grace
        fake.mode, fake.tag = "down", "v2"
        during = [await c.post("/chat/completions", json=ask(q)) for q in questions * 3]
        assert {r.status_code for r in during} == {200}
        assert {r.headers["x-vex-cache"] for r in during} == {"stale"}
        assert {r.headers["age"] for r in during} == {"100"}
        assert during[0].json()["choices"][0]["message"]["content"] == "v1: q0"
        # The breaker opened meanwhile: later stale answers did not even try the upstream.
        assert fake.total < 5 + 15
        # A client that refuses stale answers gets the failure; no-cache never gets stale.
        for header in ("stale-if-error=0", "no-cache"):
            refused = await c.post(
                "/chat/completions", json=ask("q0"), headers={"Cache-Control": header}
            )
            assert refused.status_code in (502, 503)
        async with c.stream("POST", "/chat/completions", json=ask("q1", stream=True)) as r:
            lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        assert r.headers["x-vex-cache"] == "stale"
        assert lines[-1] == "data: [DONE]"
        text = await metrics(root)
        assert 'outcome="stale",tenant="tenant-a"} 16.0' in text
        fake.mode = "ok"
        # Until the breaker's probe is due: 0.4 s after it opened, or twice that after a
        # failed probe (on a loaded machine the requests above may have outlasted 0.4 s).
        await breaker_lets_through(root)
        after = [await c.post("/chat/completions", json=ask(q)) for q in questions]
        assert {r.status_code for r in after} == {200}
        assert [r.headers["x-vex-cache"] for r in after] == ["miss"] * 5
        assert after[0].json()["choices"][0]["message"]["content"] == "v2: q0"
        again = await c.post("/chat/completions", json=ask("q0"))
    assert again.headers["x-vex-cache"] == "hit"


async def test_stale_with_the_official_openai_client() -> None:
    clock = ManualClock()
    fake = FaultyUpstream()
    async with proxied({"primary": fake}, clock=clock, primary={"stale_if_error": 600}) as (
        _,
        root,
    ):
        client = openai.AsyncOpenAI(base_url=root + "/v1", api_key=KEY_A, max_retries=0)
        messages = [{"role": "user", "content": "what is stale?"}]
        await client.chat.completions.create(model="primary", messages=messages)  # type: ignore[arg-type]
        clock.advance(61)
        fake.mode = "down"
        raw = await client.chat.completions.with_raw_response.create(
            model="primary",
            messages=messages,  # type: ignore[arg-type]
            extra_headers={"Cache-Control": "stale-if-error=300"},
        )
        await client.close()
    assert raw.headers["x-vex-cache"] == "stale"
    assert raw.headers["age"] == "61"
    assert raw.parse().choices[0].message.content == "v1: what is stale?"


async def test_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() -> None:
    clock = ManualClock()
    fake = FaultyUpstream(tag="v1")
    options = {"stale_while_revalidate": 30}
    async with proxied({"primary": fake}, clock=clock, primary=options) as (c, _):
        await c.post("/chat/completions", json=ask("q"))
        clock.advance(70)
        fake.tag, fake.latency = "v2", 0.2
        started = time.perf_counter()
        stale = await c.post("/chat/completions", json=ask("q"))
        assert time.perf_counter() - started < 0.2  # did not wait for the refresh
        assert (stale.headers["x-vex-cache"], stale.headers["age"]) == ("stale", "70")
        assert stale.json()["choices"][0]["message"]["content"] == "v1: q"
        for _ in range(100):  # the refresh lands in the background
            fresh = await c.post("/chat/completions", json=ask("q"))
            if fresh.headers["x-vex-cache"] == "hit":
                break
            await asyncio.sleep(0.05)
    assert fresh.json()["choices"][0]["message"]["content"] == "v2: q"
    assert fake.calls == {"ok": 2}


async def test_a_down_upstream_still_answered_keeps_the_proxy_ready() -> None:
    """Every replica shares the upstream: pulling them all out of rotation while they can
    still answer (stale entries, a fallback) would turn an upstream outage into a full one."""
    primary, backup = FaultyUpstream(), FaultyUpstream()
    primary.mode = "down"
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 503),
        ({"stale_if_error": 600}, 200),
        ({"fallbacks": ("backup",)}, 200),
    ]
    for options, status in cases:
        async with (
            proxied({"primary": primary, "backup": backup}, primary=options) as (_, root),
            httpx.AsyncClient() as raw,
        ):
            ready = await raw.get(root + "/readyz")
        assert ready.status_code == status, options
        assert ready.json()["upstreams"] == {"primary": False, "backup": True}
    backup.mode = "down"
    async with (
        proxied({"primary": primary, "backup": backup}, primary=cases[2][0]) as (_, root),
        httpx.AsyncClient() as raw,
    ):
        assert (await raw.get(root + "/readyz")).status_code == 503  # nobody to fall back to
