"""Resilience in the proxy's TOML: retry, breaker, fallbacks, stale_if_error per upstream."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vex_llm.cli import main
from vex_llm.resilience import BreakerPolicy, RetryPolicy
from vex_llm.server.config_file import check_config, load_settings

BASE = """
[server]
open_tenant = "local"

[upstreams.primary]
base_url = "http://127.0.0.1:1/v1"
{primary}

[upstreams.backup]
base_url = "http://127.0.0.1:2/v1"
{backup}
"""


def config(tmp_path: Path, primary: str = "", backup: str = "") -> Path:
    path = tmp_path / "vex-llm.toml"
    path.write_text(BASE.format(primary=primary, backup=backup), encoding="utf-8")
    return path


def test_defaults_retry_and_break_but_fall_back_to_nothing(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path), {})
    primary = settings.upstream("primary")
    assert primary is not None
    assert primary.retry == RetryPolicy()
    assert primary.breaker == BreakerPolicy()
    assert primary.fallbacks == ()
    assert primary.stale_if_error == 0.0


def test_every_setting_is_read(tmp_path: Path) -> None:
    primary = """
fallbacks = ["backup"]
stale_if_error = 600
stale_while_revalidate = 30

[upstreams.primary.retry]
max_attempts = 5
base_delay = 0.05
max_delay = 2
on_timeout = true
on_rate_limited = false
max_retry_after = 10
budget_ratio = 0.1
budget_min_per_second = 0.5
budget_window = 20

[upstreams.primary.breaker]
failure_rate = 0.25
min_calls = 4
window = 60
open_for = 3
max_open_for = 30
count_rate_limited = true
"""
    settings = load_settings(config(tmp_path, primary, "retry = false\nbreaker = false"), {})
    p, b = settings.upstream("primary"), settings.upstream("backup")
    assert p is not None
    assert b is not None
    assert p.fallbacks == ("backup",)
    assert p.stale_if_error == 600.0
    assert p.stale_while_revalidate == 30.0
    assert p.stale_grace == 600.0
    assert p.retry == RetryPolicy(
        max_attempts=5,
        base_delay=0.05,
        max_delay=2.0,
        on_timeout=True,
        on_rate_limited=False,
        max_retry_after=10.0,
        budget_ratio=0.1,
        budget_min_per_second=0.5,
        budget_window=20.0,
    )
    assert p.breaker == BreakerPolicy(
        failure_rate=0.25,
        min_calls=4,
        window=60.0,
        open_for=3.0,
        max_open_for=30.0,
        count_rate_limited=True,
    )
    assert (b.retry, b.breaker) == (None, None)


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    primary = """
fallbacks = ["nowhere", "primary", "backup", "backup"]
stale_if_error = -1
retry = "often"

[upstreams.primary.breaker]
failure_rate = 2.0
min_calls = "ten"
colour = "red"
"""
    problems = [str(p) for p in check_config(config(tmp_path, primary), {})]
    text = "\n".join(problems)
    for fragment in (
        "upstreams.primary.fallbacks: no upstream is named 'nowhere'",
        "upstreams.primary.fallbacks: an upstream cannot fall back to itself",
        "upstreams.primary.fallbacks: names an upstream twice",
        "upstreams.primary.stale_if_error: must be seconds >= 0",
        "upstreams.primary.retry: must be a table, or true/false",
        "upstreams.primary.breaker.min_calls: must be an integer",
        "upstreams.primary.breaker.colour: unknown setting",
        "upstreams.primary.breaker: failure_rate must be",
    ):
        assert fragment in text, text


def test_config_check_on_the_command_line(tmp_path: Path) -> None:
    bad = config(tmp_path, "[upstreams.primary.retry]\nmax_attempts = 0\n")
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "upstreams.primary.retry: max_attempts must be at least 1" in result.output
    good = config(tmp_path, 'fallbacks = ["backup"]\n')
    assert CliRunner().invoke(main, ["config", "check", str(good)]).exit_code == 0
