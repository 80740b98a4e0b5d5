"""Settings: TOML plus env overrides, every problem reported with its location."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vex_llm.server.config_file import check_config, load_settings
from vex_llm.server.settings import ConfigError, Settings, UpstreamSettings, hash_key
from vex_llm.server.tenants import TenantDirectory, bearer_token

GOOD = """
[server]
port = 9000
retry_after_cap = 30

[cache]
store = "memory://"
preset = "conservative"
ttl = 120
tti = false

[admin]
key_env = "ADMIN_KEY"

[upstreams."gpt-4o-mini"]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[upstreams.fast]
kind = "ollama"
base_url = "http://127.0.0.1:11434"
model = "llama3.1:8b"

[tenants.acme]
key_sha256 = ["{digest}"]

[tenants.globex]
key_env = "GLOBEX_KEY"
"""
ENV = {"ADMIN_KEY": "admin-1", "OPENAI_API_KEY": "sk-upstream", "GLOBEX_KEY": "globex-1"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vex-llm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def good(tmp_path: Path) -> Path:
    return write(tmp_path, GOOD.format(digest=hashlib.sha256(b"acme-1").hexdigest()))


def test_a_full_config_loads(tmp_path: Path) -> None:
    settings = load_settings(good(tmp_path), ENV)
    assert settings.port == 9000
    assert settings.retry_after_cap == 30.0
    assert settings.cache.max_entries == 100
    assert settings.cache.ttl_seconds == 120.0
    assert settings.cache.tti_seconds is None
    fast = settings.upstream("fast")
    assert fast == UpstreamSettings("fast", "ollama", "http://127.0.0.1:11434", "llama3.1:8b")
    openai_upstream = settings.upstream("gpt-4o-mini")
    assert openai_upstream is not None
    assert openai_upstream.api_key_env == "OPENAI_API_KEY"
    # The upstream key's value is not kept anywhere in the settings.
    assert "sk-upstream" not in repr(settings)
    directory = TenantDirectory.from_settings(settings)
    assert directory.tenant("Bearer acme-1") == "acme"
    assert directory.tenant("Bearer globex-1") == "globex"
    assert directory.tenant("Bearer nope") is None
    assert directory.tenant(None) is None
    assert directory.is_admin("Bearer admin-1")
    assert not directory.is_admin("Bearer acme-1")
    assert check_config(good(tmp_path), ENV) == []


def test_env_overrides_the_file(tmp_path: Path) -> None:
    env = {**ENV, "VEX_LLM_PORT": "9100", "VEX_LLM_STORE": "sqlite:////tmp/x.db",
           "VEX_LLM_METRICS_AUTH": "yes", "VEX_LLM_ADMIN_KEY": "other-admin"}  # fmt: skip
    settings = load_settings(good(tmp_path), env)
    assert (settings.port, settings.store_url, settings.metrics_auth) == (
        9100,
        "sqlite:////tmp/x.db",
        True,
    )
    assert TenantDirectory.from_settings(settings).is_admin("Bearer other-admin")


def test_input_limits_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    text = GOOD.replace("retry_after_cap = 30", "retry_after_cap = 30\nmax_prompt_bytes = 2000")
    path = write(tmp_path, text.format(digest=hashlib.sha256(b"acme-1").hexdigest()))
    limits = load_settings(path, ENV).cache.limits
    assert (limits.max_prompt_bytes, limits.max_system_bytes) == (2000, 1024 * 1024)
    env = {**ENV, "VEX_LLM_MAX_SYSTEM_BYTES": "300"}
    assert load_settings(path, env).cache.limits.max_system_bytes == 300
    bad = write(tmp_path, text.replace("max_prompt_bytes = 2000", "max_prompt_bytes = 0"))
    assert any("max_prompt_bytes" in str(p) for p in check_config(bad, ENV))


BAD = """
[server]
port = "eighty"
colour = "blue"

[cache]
store = "ftp://x"
ttl = -5

[upstreams.a]
kind = "grpc"
base_url = "localhost:1"
api_key_env = "MISSING_KEY"

[upstreams.b]
timeout = 0

[tenants.t1]
key_sha256 = ["abc"]

[tenants.t2]
key_env = "MISSING_TENANT_KEY"
"""


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    problems = check_config(path, {"VEX_LLM_PORT": "x"})
    where = {p.location.removeprefix(f"{path}: ") for p in problems}
    expected = {
        "env VEX_LLM_PORT",
        "server.colour",
        "cache",
        "upstreams.a.kind",
        "upstreams.a.base_url",
        "upstreams.a.api_key_env",
        "upstreams.b.base_url",
        "upstreams.b.timeout",
        "tenants.t1.key_sha256[0]",
        "tenants.t2.key_env",
    }
    assert expected <= where, sorted(where)
    assert all(p.message for p in problems)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert "upstreams.a.kind" in str(caught.value)


def test_the_port_type_error_names_the_setting(tmp_path: Path) -> None:
    problems = check_config(write(tmp_path, BAD), {})
    port = [p for p in problems if p.location.endswith("server.port")]
    assert port
    assert "integer" in port[0].message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not = [valid", "not valid TOML"),
        ("[upstreams.x]\nbase_url = 'http://h/v1'\n", "tenants"),
        ("[tenants.t]\nkey_sha256 = '" + "0" * 64 + "'\n", "upstreams"),
        (
            "[server]\nhost = '0.0.0.0'\nopen_tenant = 'x'\n[upstreams.m]\nbase_url = 'http://h'\n",
            "loopback",
        ),
    ],
)
def test_structural_problems(tmp_path: Path, text: str, fragment: str) -> None:
    problems = check_config(write(tmp_path, text), {})
    assert any(fragment in str(p) for p in problems), problems


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = check_config(tmp_path / "nope.toml")
    assert len(problems) == 1
    assert "cannot read" in problems[0].message


def test_settings_validate_when_built_directly() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Settings(
            upstreams=(UpstreamSettings("m", "openai", "http://h/v1", "m"),),
            open_tenant="local",
            host="0.0.0.0",
        )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_hash_key_is_sha256() -> None:
    assert hash_key("k") == hashlib.sha256(b"k").digest()


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "examples" / "vex-llm.toml"
    env = {"VEX_LLM_ADMIN_KEY": "a", "OPENAI_API_KEY": "sk-x", "TEAM_A_KEY": "k"}
    assert check_config(example, env) == []
    settings = load_settings(example, env)
    assert [u.name for u in settings.upstreams] == ["gpt-4o-mini", "local"]
    assert (settings.store_breaker.failures, settings.store_breaker.timeout) == (3, 1.0)
    assert TenantDirectory.from_settings(settings).tenant("Bearer 1") == "team-b"
