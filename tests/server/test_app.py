"""End to end with the official openai client against the proxy on a loopback port."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.server.conftest import ADMIN_KEY, KEY_A, KEY_B, MODEL, make_settings, proxy
from vex_llm import ConnectionFailed, MockProvider, RateLimited, ServerError, Timeout
from vex_llm.cache.key import tenant_tag

MESSAGES = [{"role": "user", "content": "What is a cache?"}]


def client(base_url: str, key: str = KEY_A) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)


async def test_second_identical_completion_is_a_hit_without_an_upstream_call() -> None:
    upstream = MockProvider.constant("A cache keeps answers.")
    async with proxy(upstream) as base, client(base) as c:
        first = await c.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        second = await c.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert first.headers["x-vex-cache"] == "miss"
    assert second.headers["x-vex-cache"] == "hit"
    assert "age" in second.headers
    assert "age" not in first.headers
    assert first.headers["x-vex-cache-key"] == second.headers["x-vex-cache-key"]
    # The tenant's tag, then the hash (see vex_llm.cache.key).
    tag, _, digest = first.headers["x-vex-cache-key"].partition(":")
    assert (tag, len(digest)) == (tenant_tag("tenant-a"), 64)
    assert upstream.calls == 1
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content == "A cache keeps answers."
    assert a.choices[0].finish_reason == "stop"
    assert b.usage is not None
    assert b.usage.total_tokens > 0


async def test_tenants_never_share_an_answer() -> None:
    upstream = MockProvider.constant("answer")
    async with proxy(upstream) as base, client(base, KEY_A) as a, client(base, KEY_B) as b:
        ra = await a.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        rb = await b.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert (ra.headers["x-vex-cache"], rb.headers["x-vex-cache"]) == ("miss", "miss")
    assert ra.headers["x-vex-cache-key"] != rb.headers["x-vex-cache-key"]
    assert upstream.calls == 2
    assert upstream.last_request is not None
    assert upstream.last_request.tenant_id == "tenant-b"


async def test_only_if_cached_miss_is_504_and_never_calls_upstream() -> None:
    upstream = MockProvider.constant("answer")
    async with proxy(upstream) as base, client(base) as c:
        with pytest.raises(openai.APIStatusError) as caught:
            await c.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_headers={"Cache-Control": "only-if-cached"}
            )
        assert caught.value.status_code == 504
        assert "only-if-cached" in caught.value.message
        assert upstream.calls == 0
        await c.chat.completions.create(model=MODEL, messages=MESSAGES)
        hit = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, extra_headers={"Cache-Control": "only-if-cached"}
        )
        assert hit.headers["x-vex-cache"] == "hit"


@pytest.mark.parametrize("key", ["sk-wrong", ""])
async def test_unknown_key_is_401_in_openai_shape(key: str) -> None:
    upstream = MockProvider.constant("answer")
    async with proxy(upstream) as base, client(base, key or "x") as c:
        if not key:
            async with httpx.AsyncClient() as raw:
                response = await raw.post(f"{base}/chat/completions", json={})
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "authentication_error"
            return
        with pytest.raises(openai.AuthenticationError) as caught:
            await c.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 401
    assert upstream.calls == 0


async def test_unknown_model_is_404_naming_the_model() -> None:
    async with proxy(MockProvider.constant("x")) as base, client(base) as c:
        with pytest.raises(openai.NotFoundError) as caught:
            await c.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "model"
    assert body["code"] == "model_not_found"


async def test_no_cache_bypasses_and_no_store_keeps_nothing() -> None:
    upstream = MockProvider(["one", "two", "three"])
    async with proxy(upstream) as base, client(base) as c:
        r1 = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, extra_headers={"Cache-Control": "no-store"}
        )
        r2 = await c.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        r3 = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, extra_headers={"Cache-Control": "no-cache"}
        )
        r4 = await c.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    outcomes = [r.headers["x-vex-cache"] for r in (r1, r2, r3, r4)]
    assert outcomes == ["miss", "miss", "bypass", "hit"]
    # no-cache refreshed the entry: the hit is the bypass's answer.
    assert r4.parse().choices[0].message.content == "three"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ServerError(500, "boom"), 502, "upstream_error"),
        (Timeout("too slow"), 504, "upstream_timeout"),
        (ConnectionFailed("refused"), 502, "upstream_unreachable"),
    ],
)
async def test_upstream_failures_are_passed_on_and_not_stored(
    error: Exception, status: int, code: str
) -> None:
    # Retries off: a failure that outlasts them is passed on (tests/resilience: retries on).
    upstream = MockProvider.constant("fine", error=error, fail_times=1)  # type: ignore[arg-type]
    settings = make_settings(upstream={"retry": None})
    async with proxy(upstream, settings) as base, client(base) as c:
        with pytest.raises(openai.APIStatusError) as caught:
            await c.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert caught.value.status_code == status
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == code
        after = await c.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert after.headers["x-vex-cache"] == "miss"
    assert upstream.calls == 2


async def test_rate_limit_passes_a_capped_retry_after() -> None:
    upstream = MockProvider.constant("x", error=RateLimited("slow down", retry_after=3600))
    settings = make_settings(retry_after_cap=30.0)
    async with proxy(upstream, settings) as base, client(base) as c:
        with pytest.raises(openai.RateLimitError) as caught:
            await c.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "30"


async def test_models_health_ready_and_metrics() -> None:
    upstream = MockProvider.constant("answer")
    async with proxy(upstream) as base, client(base) as c:
        models = await c.models.list()
        assert [m.id for m in models.data] == [MODEL]
        await c.chat.completions.create(model=MODEL, messages=MESSAGES)
        await c.chat.completions.create(model=MODEL, messages=MESSAGES)
        root = base.removesuffix("/v1")
        async with httpx.AsyncClient(base_url=root) as raw:
            assert (await raw.get("/healthz")).json() == {"status": "ok"}
            ready = await raw.get("/readyz")
            metrics = (await raw.get("/metrics")).text
            stats = (await raw.get("/v1/cache/stats", headers=_bearer(ADMIN_KEY))).json()
    assert ready.status_code == 200
    assert ready.json()["upstreams"] == {MODEL: True}
    assert (
        'vex_llm_cache_lookups_total{endpoint="chat.completions",model="test-model",'
        'outcome="hit",tenant="tenant-a"} 1.0' in metrics
    )
    assert 'vex_llm_tokens_saved_total{model="test-model",tenant="tenant-a"}' in metrics
    assert KEY_A not in metrics
    assert "sk-" not in metrics
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_metrics_can_require_the_admin_key() -> None:
    settings = make_settings(metrics_auth=True)
    async with proxy(MockProvider.constant("x"), settings) as base, httpx.AsyncClient() as raw:
        url = base.removesuffix("/v1") + "/metrics"
        assert (await raw.get(url)).status_code == 401
        assert (await raw.get(url, headers=_bearer(ADMIN_KEY))).status_code == 200


async def test_model_alias_is_sent_upstream_under_its_real_name() -> None:
    upstream = MockProvider.constant("x")
    settings = make_settings({"fast": "llama-3.1-8b"})
    async with proxy(upstream, settings) as base, client(base) as c:
        reply = await c.chat.completions.create(model="fast", messages=MESSAGES)
    assert upstream.last_request is not None
    assert upstream.last_request.model == "llama-3.1-8b"
    assert reply.model == "llama-3.1-8b"


class Down(MockProvider):
    async def is_available(self) -> bool:
        return False


async def test_readyz_is_503_while_an_upstream_is_down() -> None:
    async with proxy(Down.constant("x")) as base, httpx.AsyncClient() as raw:
        ready = await raw.get(base.removesuffix("/v1") + "/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "upstreams": {MODEL: False},
        "store": True,
        "breakers": {MODEL: "closed"},
    }


async def test_metrics_say_which_door_answered() -> None:
    async with proxy(MockProvider.constant("hi")) as base:
        root = base.removesuffix("/v1")
        async with httpx.AsyncClient(base_url=root, headers=_bearer(KEY_A)) as raw:
            chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
            assert (await raw.post("/v1/chat/completions", json=chat)).status_code == 200
            messages = {**chat, "max_tokens": 10}
            assert (await raw.post("/v1/messages", json=messages)).status_code == 200
            metrics = (await raw.get("/metrics")).text
    for endpoint in ("chat.completions", "messages"):
        assert f'vex_llm_requests_total{{endpoint="{endpoint}",model="test-model"' in metrics
