"""The gate's decisions over an in-process limiter with a fake clock: refusals, the upstream
closed to a request (only-if-cached), settling, budgets and the stats figures."""

from __future__ import annotations

import pytest

from vex_llm.errors import CacheMiss, ServerError
from vex_llm.models import CacheControl, LLMRequest, Usage
from vex_llm.quota import LocalQuota, QuotaGate, TenantQuota

DAY = 1_796_000_000.0  # wall clock for the budget periods


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock, *, price: float = 0.0, **default: object) -> QuotaGate:
    quotas = {
        "free": TenantQuota(),  # its own table without limits: not limited by the default
        "small": TenantQuota(requests_per_minute=2, tokens_per_minute=1000),
    }
    return QuotaGate(
        LocalQuota(clock),
        quotas,
        TenantQuota(**default),  # type: ignore[arg-type]
        price=lambda upstream, usage: price * usage.total_tokens,
        clock=lambda: DAY + clock.now,
    )


def ask(text: str = "hi", **fields: object) -> LLMRequest:
    return LLMRequest(prompt=text, **fields)  # type: ignore[arg-type]


async def test_requests_over_the_limit_are_refused_with_openai_headers() -> None:
    clock = Clock()
    g = gate(clock)
    first = await g.admit("small", 40, ask())
    second = await g.admit("small", 40, ask())
    third = await g.admit("small", 40, ask())
    assert first.refusal is None
    assert second.refusal is None
    assert second.headers()["x-ratelimit-remaining-requests"] == "0"
    refusal = third.refusal
    assert refusal is not None
    assert (refusal.type, refusal.code, refusal.reason) == (
        "requests",
        "rate_limit_exceeded",
        "requests",
    )
    assert refusal.headers["retry-after"] == "30"
    assert refusal.headers["x-ratelimit-limit-requests"] == "2"
    assert refusal.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" in refusal.headers
    assert g.refused[("small", "requests")] == 1
    clock.now += 30
    assert (await g.admit("small", 40, ask())).refusal is None


async def test_tokens_are_reserved_then_settled_and_hits_give_them_back() -> None:
    clock = Clock()
    g = gate(clock)
    ticket = await g.admit("small", 400, ask(max_tokens=100))  # 100 + 100 reserved
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "800"
    await ticket.settle("miss", Usage(30, 20), "up")
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "950"
    await ticket.settle("miss", Usage(500, 0), "up")  # once per ticket
    assert (await g.figures("small"))["limits"]["tokens"]["remaining"] == 950
    clock.now += 30  # the requests limit refills; tokens too
    hit = await g.admit("small", 400, ask(max_tokens=100))
    await hit.settle("hit", Usage(30, 20), "up")
    assert hit.headers()["x-ratelimit-remaining-tokens"] == "1000"


async def test_without_token_headroom_only_cached_answers_are_served() -> None:
    clock = Clock()
    g = gate(clock)
    big = await g.admit("small", 4000, ask())  # 1000 tokens: the whole limit
    assert big.refusal is None
    assert big.request.cache == CacheControl()
    short = await g.admit("small", 40, ask())
    assert short.refusal is None
    assert short.request.cache.only_if_cached  # looked up, never sent upstream
    refusal = await short.failed(CacheMiss("no entry"))
    assert refusal is not None
    assert (refusal.type, refusal.code, refusal.reason) == (
        "tokens",
        "rate_limit_exceeded",
        "tokens",
    )
    assert refusal.headers["retry-after"] == "1"
    assert refusal.headers["x-ratelimit-remaining-tokens"] == "0"
    # A client's own only-if-cached miss stays the client's 504, not a 429.
    clock.now += 60
    own = await g.admit("small", 40, ask(cache=CacheControl(only_if_cached=True)))
    assert await own.failed(CacheMiss("no entry")) is None
    # A no-cache request needs the upstream: refused at once when it is closed.
    clock.now += 60
    await g.admit("small", 4000, ask())
    fresh = await g.admit("small", 40, ask(cache=CacheControl(no_cache=True)))
    assert fresh.refusal is not None
    assert fresh.refusal.reason == "tokens"


async def test_an_upstream_failure_gives_the_reservation_back() -> None:
    clock = Clock()
    g = gate(clock)
    ticket = await g.admit("small", 2000, ask())
    assert await ticket.failed(ServerError(500, "boom")) is None
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "1000"


async def test_a_tenant_crosses_its_budget_and_the_others_are_unaffected() -> None:
    clock = Clock()
    g = gate(clock, price=0.01, daily_budget_usd=1.0)  # one cent a token, one dollar a day
    served = []
    for _ in range(5):
        ticket = await g.admit("acme", 40, ask())
        if ticket.request.cache.only_if_cached:
            refusal = await ticket.failed(CacheMiss("no entry"))
            assert refusal is not None
            served.append(refusal.code)
            continue
        await ticket.settle("miss", Usage(30, 10), "up")  # 40 tokens: 40 cents
        served.append("ok")
    assert served == ["ok", "ok", "ok", "insufficient_quota", "insufficient_quota"]
    refusal_ticket = await g.admit("acme", 40, ask())
    refusal = await refusal_ticket.failed(CacheMiss("no entry"))
    assert refusal is not None
    assert refusal.type == "insufficient_quota"
    assert "$1.00" in refusal.message
    assert "$1.20" in refusal.message
    assert int(refusal.headers["retry-after"]) == pytest.approx(86400 - (DAY + 100) % 86400, abs=2)
    assert "x-ratelimit-limit-requests" not in refusal.headers  # no rate limit: no header
    # A hit costs nothing and is still served.
    hit = await g.admit("acme", 40, ask())
    await hit.settle("hit", Usage(30, 10), "up")
    figures = await g.figures("acme")
    assert figures["budget"] == {
        "daily": {"limit_usd": 1.0, "spent_usd": pytest.approx(1.2)},
        "monthly": None,
    }
    assert figures["limits"] == {"requests": None, "tokens": None}
    # Another tenant under the same default has its own budget.
    other = await g.admit("globex", 40, ask())
    assert not other.request.cache.only_if_cached
    # The next UTC day starts from zero.
    clock.now += 86400
    assert not (await g.admit("acme", 40, ask())).request.cache.only_if_cached


async def test_tenants_without_limits_get_an_open_ticket() -> None:
    clock = Clock()
    g = gate(clock, requests_per_minute=1)
    request = ask()
    for _ in range(3):
        ticket = await g.admit("free", 40, request)
        assert ticket.refusal is None
        assert ticket.request is request
        assert ticket.headers() == {}
    upstream = {"x-ratelimit-remaining-requests": "99", "x-request-id": "r1"}
    ticket.apply(upstream)
    assert upstream == {"x-ratelimit-remaining-requests": "99", "x-request-id": "r1"}
    # A limited tenant's own headers replace the upstream's (the proxy's shared account).
    limited = await g.admit("someone", 40, request)
    upstream = {"x-ratelimit-remaining-tokens": "99", "x-request-id": "r1"}
    limited.apply(upstream)
    assert upstream == {
        "x-request-id": "r1",
        "x-ratelimit-limit-requests": "1",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    assert (await g.figures("free"))["limits"]["requests"] is None


async def test_a_hits_tokens_go_back_after_the_answer_and_its_headers_say_so_already() -> None:
    clock = Clock()
    g = gate(clock, tokens_per_minute=600)  # 10 tokens a second
    ticket = await g.admit("anyone", 400, ask(max_tokens=100))  # reserves 100 + 100
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "400"
    give_back = ticket.give_back_later("hit")
    assert give_back is not None
    # The answer's headers show the tokens back before the counter has them...
    assert ticket.headers()["x-ratelimit-remaining-tokens"] == "600"
    assert (await g.figures("anyone"))["limits"]["tokens"]["remaining"] == 400
    await give_back()  # ...which it has once the answer is out
    assert (await g.figures("anyone"))["limits"]["tokens"]["remaining"] == 600
    await ticket.settle("hit", None, "m")  # settled once: nothing more
    assert (await g.figures("anyone"))["limits"]["tokens"]["remaining"] == 600


async def test_an_upstream_call_is_settled_now_not_later() -> None:
    g = gate(Clock(), tokens_per_minute=600)
    for outcome in ("miss", "bypass", "partial"):
        ticket = await g.admit("anyone", 400, ask(max_tokens=100))
        assert ticket.give_back_later(outcome) is None
    limited_by_requests_only = await gate(Clock(), requests_per_minute=5).admit("x", 40, ask())
    assert limited_by_requests_only.give_back_later("hit") is None  # nothing was reserved
