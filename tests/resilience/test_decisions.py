"""The pure decisions, with a fake clock: backoff, Retry-After, the budget, the circuit."""

from __future__ import annotations

import pytest

from tests.resilience.scripted import FakeClock
from vex_llm import (
    ConnectionFailed,
    InvalidResponse,
    NotAvailable,
    RateLimited,
    RequestFailed,
    ServerError,
    Timeout,
)
from vex_llm.providers._status import error_for_status, parse_retry_after
from vex_llm.resilience import (
    BreakerPolicy,
    Circuit,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    failure_kind,
    plan_retry,
)
from vex_llm.resilience.window import RollingCounts


def test_failure_kinds() -> None:
    assert failure_kind(RateLimited()) == "rate_limited"
    assert failure_kind(ServerError(503)) == "server"
    assert failure_kind(ConnectionFailed()) == "connection"
    assert failure_kind(Timeout()) == "timeout"
    assert failure_kind(NotAvailable()) == "unavailable"
    assert failure_kind(InvalidResponse()) == "invalid"
    assert failure_kind(RequestFailed(400)) == "client"
    assert failure_kind(ValueError()) == "other"


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_full_jitter_backoff_grows_exponentially_up_to_the_cap(rand: float) -> None:
    ceilings = [backoff_delay(n, 0.1, 1.0, lambda: 1.0) for n in range(1, 7)]
    assert ceilings == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for n, ceiling in enumerate(ceilings, 1):
        assert backoff_delay(n, 0.1, 1.0, lambda: rand) == pytest.approx(ceiling * rand)
    assert backoff_delay(10_000, 0.1, 1.0, lambda: 1.0) == 1.0  # no overflow


def plan(kind: str = "server", **kw: object) -> tuple[float | None, str | None]:
    policy = kw.pop("policy", RetryPolicy(base_delay=1.0))
    args: dict[str, object] = {
        "kind": kind,
        "attempts": 1,
        "retry_after": None,
        "remaining": None,
        "rand": lambda: 0.5,
    }
    args.update(kw)
    p = plan_retry(policy, **args)  # type: ignore[arg-type]
    return p.delay, p.reason


def test_plan_retries_what_can_succeed_and_nothing_else() -> None:
    assert plan("server") == (0.5, None)
    assert plan("rate_limited") == (0.5, None)
    assert plan("connection") == (0.5, None)
    for kind in ("timeout", "client", "unavailable", "invalid", "other"):
        assert plan(kind) == (None, "not_retryable")
    assert plan("timeout", policy=RetryPolicy(on_timeout=True, base_delay=1.0)) == (0.5, None)
    assert plan("server", policy=RetryPolicy(on_server_error=False)) == (None, "not_retryable")


def test_plan_stops_after_max_attempts() -> None:
    assert plan(attempts=2)[0] == pytest.approx(1.0)  # second retry: ceiling 2 s, half of it
    assert plan(attempts=3) == (None, "attempts")


def test_retry_after_is_honoured_and_a_wait_past_the_deadline_gives_up_at_once() -> None:
    assert plan("rate_limited", retry_after=2.0) == (2.0, None)
    assert plan("rate_limited", retry_after=2.0, remaining=5.0) == (2.0, None)
    assert plan("rate_limited", retry_after=2.0, remaining=1.5) == (None, "retry_after_too_long")
    assert plan("rate_limited", retry_after=31.0) == (None, "retry_after_too_long")
    assert plan("server", remaining=0.4) == (None, "deadline")  # backoff 0.5 > 0.4 left


def test_retry_after_seconds_and_http_date_use_the_existing_parser() -> None:
    now = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now) == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None


def test_a_503_carries_its_retry_after_like_a_429() -> None:
    error = error_for_status(503, "overloaded", "7", now=0.0)
    assert isinstance(error, ServerError)
    assert error.retry_after == 7.0
    limited = error_for_status(429, "", "Wed, 21 Oct 2015 07:28:05 GMT", now=1_445_412_480.0)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 5.0
    assert error_for_status(500, "", None).retry_after is None  # type: ignore[union-attr]


def test_rolling_counts_forget_what_left_the_window() -> None:
    clock = FakeClock(0.0)
    counts = RollingCounts(10.0, 1, clock)
    counts.add(0, 5)
    clock.advance(5)
    counts.add(0, 2)
    assert counts.totals() == [7]
    clock.advance(5.5)  # the first bucket is older than 10 s now
    assert counts.totals() == [2]
    clock.advance(100)
    assert counts.totals() == [0]


def test_budget_allows_a_fraction_of_recent_requests_plus_a_small_reserve() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(ratio=0.1, min_per_second=0.2, window=10.0, clock=clock)
    # The reserve alone: 0.2/s over 10 s = 2 retries.
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    for _ in range(100):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(50))
    assert spent == 10  # 10% of 100 requests
    clock.advance(11)  # all of it left the window: only the reserve again
    assert sum(budget.try_spend() for _ in range(50)) == 2


def test_budget_with_no_reserve_never_retries_without_requests() -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=FakeClock())
    assert not budget.try_spend()
    budget.record_request()
    budget.record_request()
    assert budget.try_spend()
    assert not budget.try_spend()


POLICY = BreakerPolicy(failure_rate=0.5, min_calls=4, window=10.0, open_for=5.0, max_open_for=20.0)


def fail(circuit: Circuit, n: int = 1) -> None:
    for _ in range(n):
        ticket = circuit.acquire()
        assert ticket is not None
        circuit.record(ticket, "failure")


def succeed(circuit: Circuit, n: int = 1) -> None:
    for _ in range(n):
        ticket = circuit.acquire()
        assert ticket is not None
        circuit.record(ticket, "success")


def test_circuit_needs_the_minimum_volume_before_it_opens() -> None:
    circuit = Circuit(POLICY, clock=FakeClock())
    fail(circuit, 3)
    assert circuit.state == "closed"  # 100% failures, but only 3 calls
    fail(circuit)
    assert circuit.state == "open"
    assert circuit.acquire() is None
    assert circuit.retry_in() == 5.0


def test_circuit_opens_on_the_failure_rate_not_on_a_few_failures() -> None:
    circuit = Circuit(POLICY, clock=FakeClock())
    succeed(circuit, 6)
    fail(circuit, 5)
    assert circuit.state == "closed"  # 5 of 11
    fail(circuit)
    assert circuit.state == "open"  # 6 of 12


def test_old_failures_leave_the_window() -> None:
    clock = FakeClock()
    circuit = Circuit(POLICY, clock=clock)
    fail(circuit, 3)
    clock.advance(11)
    fail(circuit, 1)
    succeed(circuit, 3)
    assert circuit.state == "closed"


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock = FakeClock()
    circuit = Circuit(POLICY, clock=clock)
    fail(circuit, 4)
    clock.advance(4.9)
    assert circuit.acquire() is None
    assert circuit.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert circuit.state == "half_open"
    probe = circuit.acquire()
    assert probe is not None
    assert probe.probe
    assert circuit.acquire() is None  # only one probe at a time
    assert circuit.retry_in() > 0
    circuit.record(probe, "success")
    assert circuit.state == "closed"
    fail(circuit, 3)
    assert circuit.state == "closed"  # the window was cleared on closing


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum() -> None:
    clock = FakeClock()
    circuit = Circuit(POLICY, clock=clock)
    fail(circuit, 4)
    for expected in (10.0, 20.0, 20.0):
        clock.advance(circuit.retry_in())
        fail(circuit)  # the probe
        assert circuit.state == "open"
        assert circuit.retry_in() == expected
    clock.advance(20)
    succeed(circuit)
    fail(circuit, 4)
    assert circuit.retry_in() == 5.0  # a success reset the wait
    assert circuit.opened == 5


def test_an_inconclusive_probe_lets_the_next_call_probe() -> None:
    clock = FakeClock()
    circuit = Circuit(POLICY, clock=clock)
    fail(circuit, 4)
    clock.advance(5)
    probe = circuit.acquire()
    assert probe is not None
    circuit.record(probe, "ignored")
    assert circuit.state == "half_open"
    again = circuit.acquire()
    assert again is not None
    assert again.probe


def test_calls_from_before_a_transition_do_not_count() -> None:
    clock = FakeClock()
    circuit = Circuit(POLICY, clock=clock)
    late = circuit.acquire()
    assert late is not None
    fail(circuit, 4)
    clock.advance(5)
    probe = circuit.acquire()
    assert probe is not None
    circuit.record(late, "success")  # started while closed: says nothing now
    assert circuit.state == "half_open"
    circuit.record(probe, "failure")
    assert circuit.state == "open"


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"base_delay": -1},
        {"timeout": 0},
        {"budget_ratio": float("nan")},
    ],
)
def test_bad_retry_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"on_timeout": 1}, {"max_attempts": 2.0}, {"base_delay": "1"}])
def test_retry_policy_fields_of_the_wrong_type_are_type_errors(bad: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"failure_rate": 0},
        {"failure_rate": 1.5},
        {"min_calls": 0},
        {"open_for": 0},
        {"max_open_for": 1.0},
    ],
)
def test_bad_breaker_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        BreakerPolicy(**bad)  # type: ignore[arg-type]
