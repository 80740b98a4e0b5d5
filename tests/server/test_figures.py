"""The pure parts behind the stats' latency and ``last_hour`` figures and the dashboard's keys:
bucket-interpolated quantiles, the snapshot ring, the windowed figures, Basic credentials."""

from __future__ import annotations

import base64
import math

import pytest

from vex_llm.server.admin import compact, one_tenant, tenant_figures, window_figures
from vex_llm.server.dashboard import bearer_from
from vex_llm.server.latency import latency_ms, quantile
from vex_llm.server.metrics import ProxyMetrics
from vex_llm.server.window import SampleRing

INF = math.inf


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- quantiles ---------------------------------------------------------------------------------


def test_a_quantile_is_interpolated_inside_its_bucket_as_histogram_quantile_does() -> None:
    # 10 observations: 4 at or below 10 ms, 9 at or below 100 ms, one above 1 s.
    buckets = {0.01: 4, 0.1: 9, 1.0: 9, INF: 10}
    assert quantile(buckets, 0.5) == pytest.approx(0.01 + 0.09 * (5 - 4) / (9 - 4))
    assert quantile(buckets, 0.2) == pytest.approx(0.005)  # the first bucket starts at 0
    # A rank in the +Inf bucket is the largest finite bound (nothing to interpolate to).
    assert quantile(buckets, 0.99) == 1.0
    assert latency_ms(buckets) == {"p50": 28.0, "p99": 1000.0}


def test_no_observations_is_no_quantile_and_a_bad_q_is_refused() -> None:
    assert quantile({}, 0.5) is None
    assert quantile({0.1: 0, INF: 0}, 0.5) is None
    assert quantile({0.1: 3}, 0.5) is None  # no +Inf bucket: not a whole histogram
    assert latency_ms({}) == {"p50": None, "p99": None}
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile({INF: 1}, 1.5)


def test_quantiles_from_the_proxy_histogram_fall_in_the_right_bucket() -> None:
    metrics = ProxyMetrics()
    for _ in range(98):
        metrics.observe("t", "m", "hit", 0.0008, 0)  # (0.5 ms, 1 ms] bucket
    for _ in range(2):
        metrics.observe("t", "m", "miss", 0.7, 10)  # (0.5 s, 1 s] bucket
    fig = tenant_figures(metrics.samples())["t"]
    assert 0.5 < fig["latency_ms"]["p50"] <= 1.0
    assert 500 < fig["latency_ms"]["p99"] <= 1000
    assert fig["models"]["m"]["latency_ms"] == fig["latency_ms"]


def test_compacted_samples_give_the_same_figures_from_fewer_samples() -> None:
    metrics = ProxyMetrics()
    for tenant in ("a", "b"):
        for endpoint in ("chat.completions", "messages", "embeddings"):
            for outcome, seconds in (("hit", 0.001), ("miss", 0.3), ("coalesced", 0.2)):
                metrics.observe(tenant, "m", outcome, seconds, 7, endpoint)
                metrics.status(tenant, "m", 200, endpoint)
            metrics.status(tenant, "m", 429, endpoint)
        metrics.upstream_error(tenant, "m", "Timeout")
        metrics.upstream_error(tenant, "m", "ConnectionFailed")
    samples = list(metrics.samples())
    small = compact(samples)
    assert len(small) * 3 < len(samples)
    assert tenant_figures(small) == tenant_figures(samples)
    assert window_figures(small, small, 1, 1, None) == window_figures(samples, samples, 1, 1, None)
    figures = tenant_figures(small)["a"]
    assert (figures["requests"], figures["hits"], figures["errors"]) == (12, 3, 2)


# -- the last hour -----------------------------------------------------------------------------


def test_the_window_is_now_minus_the_oldest_snapshot_within_the_horizon() -> None:
    clock = Clock()
    metrics = ProxyMetrics()
    ring = SampleRing(clock, horizon=3600, period=60)
    ring.record(metrics.samples())  # at the start: nothing counted yet
    for minute in range(1, 121):
        metrics.observe("t", "m", "hit", 0.001, 5)
        clock.now += 60
        assert ring.due()
        ring.record(metrics.samples())
        assert not ring.due()
        assert len(ring) <= 61  # bounded: an hour of minutes and one more
        seconds, hour = ring.window(metrics.samples())
        admin = window_figures(metrics.samples(), hour, seconds, ring.uptime(), None)
        own = window_figures(metrics.samples(), hour, seconds, ring.uptime(), "t")
        expected = min(minute, 60)  # one request a minute
        assert admin["all_tenants"]["hits"] == minute
        assert admin["last_hour"]["tenants"]["t"]["hits"] == expected, minute
        assert admin["last_hour"]["all_tenants"]["hits"] == expected
        assert admin["last_hour"]["seconds"] == min(minute * 60, 3600)
        assert own["last_hour"]["tokens_saved"] == 5 * expected
        assert own["last_hour"]["seconds"] == admin["last_hour"]["seconds"]
    assert admin["uptime_seconds"] == own["uptime_seconds"] == 7200


def test_latency_over_the_window_forgets_what_happened_before_it() -> None:
    clock = Clock()
    metrics = ProxyMetrics()
    ring = SampleRing(clock, horizon=3600, period=60, origin=clock.now - 60)
    for _ in range(50):
        metrics.observe("t", "m", "miss", 2.0, 0)  # slow, then an hour passes
    ring.record(metrics.samples())
    clock.now += 3600
    for _ in range(50):
        metrics.observe("t", "m", "hit", 0.0008, 0)
    seconds, hour = ring.window(metrics.samples())
    own = {
        **one_tenant(tenant_figures(metrics.samples()), "t"),
        **window_figures(metrics.samples(), hour, seconds, ring.uptime(), "t"),
    }
    assert own["last_hour"]["latency_ms"]["p99"] <= 1.0
    assert own["latency_ms"]["p99"] > 1000
    assert own["last_hour"]["seconds"] == 3600
    assert own["last_hour"]["misses"] == 0
    assert own["misses"] == 50


def test_a_counter_that_went_down_counts_from_zero_and_a_stalled_ring_says_what_it_covers() -> None:
    clock = Clock()
    ring = SampleRing(clock, horizon=120, period=60, origin=0.0)  # the server started long ago
    labels = {"tenant": "t", "model": "m"}
    ring.record([("vex_llm_tokens_saved_total", labels, 100.0)])
    seconds, hour = ring.window([("vex_llm_tokens_saved_total", labels, 30.0)])
    assert seconds == 0
    assert hour == [("vex_llm_tokens_saved_total", {"model": "m", "tenant": "t"}, 30.0)]
    clock.now += 500  # no snapshot since: the window is since the newest one, and says so
    seconds, hour = ring.window([("vex_llm_tokens_saved_total", labels, 130.0)])
    assert seconds == 500
    assert hour[0][2] == 30.0
    assert ring.uptime() == 1500
    with pytest.raises(ValueError, match="period"):
        SampleRing(clock, horizon=10, period=60)


def test_until_an_hour_has_passed_the_window_starts_at_the_servers_start() -> None:
    # A worker that started late took its first snapshot after others had answered: the
    # window still counts from the server's start, when every counter was zero.
    clock = Clock()
    ring = SampleRing(clock, horizon=3600, period=60, origin=clock.now - 30)
    labels = {"tenant": "t", "model": "m", "status": "2xx"}
    ring.record([("vex_llm_requests_total", labels, 12.0)])
    seconds, hour = ring.window([("vex_llm_requests_total", labels, 12.0)])
    assert seconds == 30
    assert hour[0][2] == 12.0


def test_only_tenant_counters_are_kept_in_a_snapshot() -> None:
    ring = SampleRing(Clock())
    _, hour = ring.window(
        [
            ("vex_llm_store_circuit_state", {"state": "open"}, 1.0),
            ("vex_llm_requests_created", {"tenant": "t", "model": "m"}, 1.7e9),
            ("vex_llm_requests_total", {"tenant": "t", "model": "m", "status": "2xx"}, 2.0),
        ]
    )
    assert [name for name, _, _ in hour] == ["vex_llm_requests_total"]


# -- keys from a browser -----------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (basic("", "sk-key"), "Bearer sk-key"),
        (basic("anyone", "sk-key"), "Bearer sk-key"),
        (basic("sk-key", ""), "Bearer sk-key"),  # typed into the user name field
        (basic("a", "b:c"), "Bearer b:c"),
        ("Bearer sk-key", "Bearer sk-key"),
        (None, None),
        (basic("", ""), None),
        (basic("", "two words"), None),
        ("Basic !!!not-base64", None),
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
        ("Basic " + "A" * 5000, None),
    ],
)
def test_basic_credentials_carry_the_key_in_the_password(
    authorization: str | None, expected: str | None
) -> None:
    assert bearer_from(authorization) == expected
