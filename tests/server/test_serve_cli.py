"""``vex-llm serve`` (quick path) and ``vex-llm ask`` as real processes, against a fake upstream."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import openai
import pytest

from tests.server.conftest import serve
from tests.server.fake_upstream import FakeUpstream
from tests.server.processes import serving, vex_llm
from vex_llm.server.run import run_server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serve_quick_path_caches_and_stops_cleanly_on_a_signal(sig: int) -> None:
    fake = FakeUpstream()
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "fake", "--store", "memory://")
        async with serving(*args) as proxy:
            client = openai.AsyncOpenAI(base_url=f"{proxy.base}/v1", api_key="any", max_retries=0)
            messages = [{"role": "user", "content": "hi"}]
            first = await client.chat.completions.with_raw_response.create(
                model="fake",
                messages=messages,  # type: ignore[arg-type]
            )
            second = await client.chat.completions.with_raw_response.create(
                model="fake",
                messages=messages,  # type: ignore[arg-type]
            )
            await client.close()
            async with httpx.AsyncClient() as browser:  # open access: the dashboard is too
                page = await browser.get(f"{proxy.base}/ui")
                shown = (await browser.get(f"{proxy.base}/ui/stats")).json()
            code = await proxy.stop(sig)
    assert page.status_code == 200
    assert (shown["hits"], shown["misses"], shown["last_hour"]["hits"]) == (1, 1, 1)
    assert f"dashboard: {proxy.base}/ui (open)" in proxy.stderr
    assert (first.headers["x-vex-cache"], second.headers["x-vex-cache"]) == ("miss", "hit")
    assert fake.calls == 1
    assert code == 0, proxy.stderr
    assert "open access" in proxy.stderr
    assert "Shutting down" in proxy.stderr


async def test_ask_prints_the_answer_then_a_hit(tmp_path: Path) -> None:
    fake = FakeUpstream()
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "fake", "--store", store)
        runs = [await vex_llm("ask", "What is 2+2?", *args) for _ in range(2)]
        streamed = await vex_llm("ask", "What is 2+2?", *args, "--stream")
        fresh = await vex_llm("ask", "What is 2+2?", *args, "--no-cache")
        stats = await vex_llm("cache", "stats", "--store", store)
        cleared = await vex_llm("cache", "clear", "--store", store, "--yes")
    (c1, out1, err1), (c2, out2, err2) = runs
    assert (c1, c2) == (0, 0)
    assert out1 == out2 == "echo: What is 2+2?\n"
    assert err1.startswith("miss in ")
    assert err2.startswith("hit in ")
    assert streamed[0] == 0
    assert streamed[1] == out1
    assert streamed[2].startswith("hit in ")
    assert fresh[2].startswith("bypass in ")
    assert fake.calls == 2
    assert stats[0] == 0
    assert "entries" in stats[1]
    assert cleared[0] == 0
    assert "removed 1 entries" in cleared[2]


async def test_ask_reports_an_upstream_failure_with_exit_1() -> None:
    fake = FakeUpstream()
    async with serve(fake.app) as upstream:
        code, out, err = await vex_llm(
            "ask", "fault:500", "--upstream", f"{upstream}/v1", "--model", "fake",
            "--store", "memory://",
        )  # fmt: skip
    assert code == 1
    assert out == ""
    assert "ServerError" in err


def test_the_server_runs_on_uvloop_when_it_is_installed() -> None:
    # serve_app runs uvicorn in the caller's loop, so the loop is run_server's choice.
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_server(loop_module()).startswith("uvloop")
