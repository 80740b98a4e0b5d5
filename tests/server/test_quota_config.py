"""``[quota]`` and per-tenant quota settings: inheritance, ``false``, and every problem."""

from __future__ import annotations

from typing import Any

import pytest

from vex_llm.quota import TenantQuota
from vex_llm.server.config_file import settings_from_document
from vex_llm.server.settings import ConfigError, Settings, TenantSettings, UpstreamSettings

DIGEST = "ab" * 32


def document(**tables: Any) -> dict[str, Any]:
    return {
        "upstreams": {"m": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "tenants": {"a": {"key_sha256": DIGEST}, "b": {"key_sha256": "cd" * 32}},
        **tables,
    }


def test_a_tenant_inherits_the_default_field_by_field_and_false_lifts_a_limit() -> None:
    doc = document(quota={"requests_per_minute": 60, "daily_budget_usd": 5})
    doc["tenants"]["a"].update(tokens_per_minute=1000, daily_budget_usd=False)
    settings, problems = settings_from_document(doc, {})
    assert problems == []
    assert settings is not None
    assert settings.quota == TenantQuota(requests_per_minute=60, daily_budget_usd=5)
    a, b = settings.tenants
    assert a.quota == TenantQuota(requests_per_minute=60, tokens_per_minute=1000)
    assert b.quota is None  # the default as it is


def test_every_quota_problem_is_listed_with_its_place() -> None:
    doc = document(quota={"requests_per_minute": 0, "tokens_per_minute": True, "burst": 3})
    doc["tenants"]["a"].update(daily_budget_usd=-1, monthly_budget_usd="lots")
    settings, problems = settings_from_document(doc, {}, "vex.toml")
    assert settings is None
    places = sorted(p.location for p in problems)
    assert places == [
        "vex.toml: quota.burst",
        "vex.toml: quota.requests_per_minute",
        "vex.toml: quota.tokens_per_minute",
        "vex.toml: tenants.a.daily_budget_usd",
        "vex.toml: tenants.a.monthly_budget_usd",
    ]


def test_settings_built_in_code_are_checked_too() -> None:
    upstream = UpstreamSettings("m", "openai", "http://127.0.0.1:9/v1", "m")
    bad = TenantSettings("a", (bytes(32),), TenantQuota(tokens_per_minute=-5))
    with pytest.raises(ConfigError, match=r"tenants\.a\.tokens_per_minute"):
        Settings(upstreams=(upstream,), tenants=(bad,))
    with pytest.raises(ConfigError, match=r"quota\.daily_budget_usd"):
        Settings(upstreams=(upstream,), open_tenant="x", quota=TenantQuota(daily_budget_usd=-1))
