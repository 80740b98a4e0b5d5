"""The pure parts of rate limiting: GCRA arithmetic, headers, periods, estimates, quotas."""

from __future__ import annotations

import datetime as dt

import pytest

from vex_llm.quota.estimate import estimate_tokens
from vex_llm.quota.gcra import Rate, peek, refunded, settle, take
from vex_llm.quota.headers import (
    anthropic_ratelimit_headers,
    go_duration,
    ratelimit_headers,
    retry_after_seconds,
)
from vex_llm.quota.periods import periods_at
from vex_llm.quota.policy import TenantQuota, nanos

NOW = 1_000_000.0


def test_a_full_limit_can_be_spent_at_once_then_refills_one_interval_at_a_time() -> None:
    rate = Rate(3, 60.0)
    tat = None
    remaining = []
    for _ in range(3):
        tat, verdict = take(tat, NOW, rate)
        assert verdict.allowed
        remaining.append(verdict.remaining)
    assert remaining == [2, 1, 0]
    refused_tat, refused = take(tat, NOW, rate)
    assert not refused.allowed
    assert refused_tat == tat  # a refusal changes nothing
    assert refused.retry_after == pytest.approx(20.0)
    assert refused.reset == pytest.approx(60.0)
    assert not take(tat, NOW + 19.9, rate)[1].allowed
    tat, later = take(tat, NOW + 20.0, rate)
    assert later.allowed
    assert later.remaining == 0
    # A full period of quiet later the whole limit is back.
    assert peek(tat, NOW + 20.0 + 60.0, rate).remaining == 3


def test_rounding_never_refuses_the_last_unit_of_an_odd_limit() -> None:
    rate = Rate(7, 60.0)  # 60 / 7 is no exact float
    tat = None
    for _ in range(7):
        tat, verdict = take(tat, NOW, rate)
        assert verdict.allowed
    assert not take(tat, NOW, rate)[1].allowed


def test_a_cost_is_all_or_nothing_and_a_cost_above_the_limit_waits_for_a_full_bucket() -> None:
    rate = Rate(100, 60.0)
    tat, verdict = take(None, NOW, rate, 70)
    assert (verdict.allowed, verdict.remaining) == (True, 30)
    same, refused = take(tat, NOW, rate, 40)
    assert (refused.allowed, same) == (False, tat)
    assert refused.retry_after == pytest.approx(6.0)  # 10 units of 0.6 s
    # More than the whole limit is taken as the whole limit, once the bucket is full.
    assert not take(tat, NOW, rate, 5000)[1].allowed
    full = take(tat, NOW + 60.0, rate, 5000)[1]
    assert (full.allowed, full.remaining) == (True, 0)


def test_settle_refunds_never_past_full_and_records_debt() -> None:
    rate = Rate(100, 60.0)
    tat, _ = take(None, NOW, rate, 50)
    refunded, verdict = settle(tat, NOW, rate, -50)
    assert refunded is None
    assert (verdict.remaining, verdict.reset) == (100, 0.0)
    assert settle(tat, NOW, rate, -500)[1].remaining == 100
    # Used more than reserved: the bucket goes into debt and refuses until it is paid.
    tat, verdict = settle(tat, NOW, rate, 100)  # 150 used in all
    assert verdict.remaining == 0
    assert verdict.reset == pytest.approx(90.0)
    refused = take(tat, NOW, rate)[1]
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(30.6)
    assert take(tat, NOW + 30.6, rate)[1].allowed


def test_peek_reports_without_taking() -> None:
    rate = Rate(2, 60.0)
    assert peek(None, NOW, rate).remaining == 2
    tat, _ = take(None, NOW, rate, 2)
    seen = peek(tat, NOW, rate)
    assert (seen.allowed, seen.remaining) == (False, 0)
    assert seen.retry_after == pytest.approx(30.0)
    assert peek(tat, NOW, rate) == seen


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (1, "1s"),
        (8.64, "8.64s"),
        (59.9995, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_headers_name_only_the_limited_parts_and_retry_after_is_whole_seconds() -> None:
    rate = Rate(10, 60.0)
    verdict = take(None, NOW, rate, 4)[1]
    assert ratelimit_headers((rate, verdict), None) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "6",
        "x-ratelimit-reset-requests": "24s",
    }
    assert set(ratelimit_headers(None, (rate, verdict))) == {
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    }
    assert [retry_after_seconds(s) for s in (0.01, 1.0, 1.2, 59.0)] == ["1", "1", "2", "59"]


def test_anthropic_headers_give_the_reset_as_an_rfc3339_time_rounded_up() -> None:
    rate = Rate(10, 60.0)
    verdict = take(None, NOW, rate, 4)[1]  # full again in 24 s
    now = 1_795_000_000.5  # 2026-11-18T11:06:40.5Z
    assert anthropic_ratelimit_headers((rate, verdict), None, now) == {
        "anthropic-ratelimit-requests-limit": "10",
        "anthropic-ratelimit-requests-remaining": "6",
        "anthropic-ratelimit-requests-reset": "2026-11-18T11:07:05Z",
    }
    assert set(anthropic_ratelimit_headers(None, (rate, verdict), now)) == {
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    }


def test_budget_periods_are_utc_days_and_months() -> None:
    moment = dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=dt.UTC).timestamp()
    periods = periods_at(moment)
    assert (periods.day, periods.month) == ("2026-12-31", "2026-12")
    assert periods.day_left == pytest.approx(30.0)
    assert periods.month_left == pytest.approx(30.0)
    assert periods_at(moment + 60).month == "2027-01"
    assert periods_at(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()).month_left == 28 * 86400


def test_the_estimate_is_body_bytes_over_four_plus_the_answer_maximum() -> None:
    assert estimate_tokens(400) == 100
    assert estimate_tokens(401, 50) == 151
    assert estimate_tokens(0) == 1
    assert estimate_tokens(40, None, {"max_output_tokens": 90}) == 100
    assert estimate_tokens(40, None, {"max_completion_tokens": True}) == 10


def test_quota_problems_and_units() -> None:
    assert TenantQuota(requests_per_minute=0).problems()[0][0] == "requests_per_minute"
    assert TenantQuota(tokens_per_minute=1.5).problems()[0][0] == "tokens_per_minute"  # type: ignore[arg-type]
    assert TenantQuota(daily_budget_usd=-1).problems()[0][0] == "daily_budget_usd"
    assert TenantQuota(monthly_budget_usd=float("nan")).problems() != []
    assert TenantQuota(daily_budget_usd=0).problems() == []  # cache-only tenant
    assert not TenantQuota().limited
    limits = TenantQuota(requests_per_minute=6, daily_budget_usd=1.5).limits()
    assert limits.requests == Rate(6, 60.0)
    assert (limits.tokens, limits.daily, limits.monthly) == (None, 1_500_000_000, None)
    assert limits.over_budget(1_499_999_999, 0) is None
    assert limits.over_budget(1_500_000_000, 0) == "daily"
    assert nanos(0.1 + 0.2) == 300_000_000  # float noise does not add a nanodollar


@pytest.mark.parametrize("units", [0, 1, 3, 4, 50])
def test_refunded_foretells_what_settle_will_make_of_the_state(units: int) -> None:
    rate = Rate(10, 60.0)
    tat, taken = take(None, NOW, rate, 4)
    assert refunded(rate, taken, units) == settle(tat, NOW, rate, -units)[1]
