"""``vex-llm serve --workers N`` as real processes: serving, sharing, and leaving nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import serve
from tests.server.fake_upstream import FakeUpstream
from tests.server.processes import Served, serving, vex_llm
from vex_llm.server.config_file import settings_from_document
from vex_llm.server.settings import ConfigError, Settings, UpstreamSettings

UPSTREAM = UpstreamSettings(name="m", kind="openai", base_url="http://127.0.0.1:9/v1", model="m")


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


async def eventually(check: Callable[[], bool], within: float = 20) -> None:
    """Poll ``check()`` until true (process state has no event to wait on)."""
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within} s: {check}")


def workers(pid: int) -> set[int]:
    """The worker processes among ``pid``'s children (not multiprocessing's resource tracker)."""
    found = set()
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            found.add(child)
    return found


async def workers_of(proxy: Served, count: int) -> set[int]:
    await eventually(lambda: len(workers(proxy.process.pid)) == count)
    return workers(proxy.process.pid)


async def ask_each_on_a_new_connection(base: str, times: int, model: str = "fake") -> list[str]:
    outcomes = []
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "same question"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    for _ in range(times):
        # A new connection each time: any worker may take it.
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                f"{base}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}
            )
            assert response.status_code == 200, response.text
            outcomes.append(response.headers["x-vex-cache"])
    return outcomes


def lookups(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vex_llm_cache_lookups_total{")
    )


def test_settings_refuse_memory_with_more_than_one_worker() -> None:
    with pytest.raises(ConfigError, match="shared cache store"):
        Settings(upstreams=(UPSTREAM,), open_tenant="local", workers=2)
    assert Settings(upstreams=(UPSTREAM,), open_tenant="local", workers=1).workers == 1
    with pytest.raises(ConfigError, match="at least 1"):
        Settings(upstreams=(UPSTREAM,), open_tenant="local", workers=0)


def test_workers_in_the_config_file_and_environment() -> None:
    doc = {
        "server": {"open_tenant": "local", "workers": 3},
        "cache": {"store": "sqlite:////tmp/x.db"},
        "upstreams": {"m": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    }
    settings, problems = settings_from_document(doc, {})
    assert problems == []
    assert settings is not None
    assert settings.workers == 3
    settings, _ = settings_from_document(doc, {"VEX_LLM_WORKERS": "2"})
    assert settings is not None
    assert settings.workers == 2
    _, problems = settings_from_document(doc, {"VEX_LLM_STORE": "memory://"})
    assert any("shared cache store" in str(p) for p in problems)


async def test_serve_refuses_memory_store_with_workers() -> None:
    code, _, err = await vex_llm(
        "serve", "--workers", "2", "--upstream", "http://127.0.0.1:9/v1", "--model", "m",
        "--store", "memory://",
    )  # fmt: skip
    assert code == 1
    assert "shared cache store" in err
    assert "sqlite:///" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_two_workers_share_cache_and_metrics_then_all_stop(sig: int, tmp_path: Path) -> None:
    fake = FakeUpstream()
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "fake", "--store", store)
        async with serving(*args, "--workers", "2") as proxy:
            await workers_of(proxy, 2)
            # Announced once every worker listens (the first one may answer long before).
            await proxy.wait_for_stderr("(2 workers)")
            everything = children(proxy.process.pid)  # the workers and the resource tracker
            outcomes = await ask_each_on_a_new_connection(proxy.base, 12)
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{proxy.base}/metrics")).text
                auth = {"authorization": "Bearer k"}
                stats = (await client.get(f"{proxy.base}/v1/cache/stats", headers=auth)).json()
            views = []  # on new connections: whichever worker answers, the same figures
            for _ in range(4):
                async with httpx.AsyncClient() as client:
                    views.append(
                        (await client.get(f"{proxy.base}/v1/cache/stats", headers=auth)).json()
                    )
            code = await proxy.stop(sig)
    for view in views:
        hour = view.pop("last_hour")
        assert hour["hits"] + hour["misses"] == 12  # the window sums the workers too
        assert hour["latency_ms"] == view["latency_ms"]
        del view["uptime_seconds"]
    assert all(view == views[0] for view in views)
    assert views[0]["latency_ms"]["p99"] is not None
    assert outcomes == ["miss"] + ["hit"] * 11
    assert fake.calls == 1
    assert lookups(metrics) == 12  # both workers' counts, whichever answered the scrape
    assert (stats["tenant"], stats["hits"] + stats["misses"]) == ("local", 12)  # and here
    assert code == 0, proxy.stderr
    assert "(2 workers)" in proxy.stderr
    assert "stopped 2 workers" in proxy.stderr
    assert len(everything) >= 2
    assert not any(alive(pid) for pid in everything)


async def test_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    fake = FakeUpstream()
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "fake", "--store", store)
        async with serving(*args, "--workers", "2") as proxy:
            first = await workers_of(proxy, 2)
            tracker = children(proxy.process.pid) - first
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            await eventually(lambda: victim not in workers(proxy.process.pid))
            second = await workers_of(proxy, 2)
            assert await ask_each_on_a_new_connection(proxy.base, 2) == ["miss", "hit"]
            assert await proxy.stop(signal.SIGINT) == 0
    assert victim not in second
    assert not any(alive(pid) for pid in first | second | tracker)


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    fake = FakeUpstream()
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "fake", "--store", store)
        async with serving(*args, "--workers", "2") as proxy:
            await workers_of(proxy, 2)
            everything = children(proxy.process.pid)
            await proxy.stop(signal.SIGKILL)
            await eventually(lambda: not any(alive(pid) for pid in everything))


async def test_quota_refusals_in_metrics_add_up_over_the_workers(tmp_path: Path) -> None:
    """Each worker refuses on its own (SQLite: limits per process); /metrics must count the
    refusals of both, whichever worker answers the scrape (a counter that jumped between
    workers' values would break Prometheus' rate())."""
    fake = FakeUpstream()
    async with serve(fake.app) as upstream:
        config = tmp_path / "vex-llm.toml"
        config.write_text(
            f'[cache]\nstore = "sqlite:///{tmp_path / "cache.db"}"\n'
            f'[upstreams.fake]\nkind = "openai"\nbase_url = "{upstream}/v1"\n'
            f'[tenants.t]\nkey_sha256 = ["{hashlib.sha256(b"k").hexdigest()}"]\n'
            "requests_per_minute = 1\n"
        )
        async with serving("--config", str(config), "--workers", "2") as proxy:
            await proxy.wait_for_stderr("(2 workers)")
            body = {"model": "fake", "messages": [{"role": "user", "content": "q"}]}
            statuses = []
            for _ in range(8):  # a new connection each time: either worker may take it
                async with httpx.AsyncClient(timeout=60) as client:
                    response = await client.post(
                        f"{proxy.base}/v1/chat/completions",
                        json=body,
                        headers={"authorization": "Bearer k"},
                    )
                    statuses.append(response.status_code)
            scrapes = []
            for _ in range(4):
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"{proxy.base}/metrics")).text
                scrapes.append(
                    [line for line in text.splitlines() if line.startswith("vex_llm_quota_refused")]
                )
            await proxy.stop(signal.SIGTERM)
    refused = statuses.count(429)
    assert 6 <= refused <= 7  # one request per worker that got any
    line = f'vex_llm_quota_refused_total{{reason="requests",tenant="t"}} {float(refused)}'
    assert all(scrape == [line] for scrape in scrapes), scrapes
