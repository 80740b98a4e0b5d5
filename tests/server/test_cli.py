"""The command line: help everywhere, config check, usage errors with non-zero exit codes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vex_llm import LLMResponse, SQLiteStore, Usage
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.key import tenant_key_prefix
from vex_llm.cli import main

COMMANDS = [[], ["serve"], ["ask"], ["cache"], ["cache", "stats"], ["cache", "clear"],
            ["config"], ["config", "check"], ["demo"], ["embed"]]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "main")
def test_help_everywhere(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_config_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[upstreams.a]\nkind = "grpc"\n[server]\nport = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    for location in ("upstreams.a.kind", "upstreams.a.base_url", "server.port", "tenants"):
        assert location in result.output, result.output


def test_config_check_passes_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(
        '[upstreams.m]\nbase_url = "http://127.0.0.1:1/v1"\n'
        '[tenants.t]\nkey_sha256 = "' + "ab" * 32 + '"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--upstream", "http://127.0.0.1:1/v1"],
        ["serve", "--config", "x.toml", "--upstream", "http://127.0.0.1:1/v1"],
        ["serve", "--upstream-kind", "grpc"],
        ["ask"],
        ["nope"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output


def test_serve_refuses_a_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[upstreams.a]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "invalid configuration" in result.output


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vex_llm", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "serve" in result.stdout


def test_cache_clear_removes_one_tenants_entries(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    answer = CacheEntry.of(LLMResponse("x", "m", Usage(1, 1)), 0.0)

    async def fill() -> None:
        store = SQLiteStore(path)
        for tenant, name in (("a", "1"), ("a", "2"), ("b", "1")):
            await store.set(tenant_key_prefix(tenant) + name, answer, None, None)
        await store.aclose()

    asyncio.run(fill())
    url = f"sqlite:///{path}"
    refused = CliRunner().invoke(main, ["cache", "clear", "--store", url, "--tenant", ""])
    result = CliRunner().invoke(main, ["cache", "clear", "--store", url, "--tenant", "a", "--yes"])
    assert refused.exit_code == 2
    assert result.exit_code == 0, result.output
    assert "removed 2 entries of tenant 'a'" in result.output
    again = SQLiteStore(path)
    try:
        assert again.count_now() == 1
    finally:
        again.close()
