"""The proxy while its cache store fails: admin endpoints say 503, the chat path fails open."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ADMIN_KEY, KEY_A, make_settings, serve
from tests.stores.servers import Server, binary
from vex_llm import MockProvider
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores import MemoryStore, StoreError
from vex_llm.cache.stores.breaker import StoreBreakerPolicy
from vex_llm.server.app import create_app
from vex_llm.server.config_file import check_config, load_settings


class BrokenStore(MemoryStore):
    """A memory store whose every operation fails while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__(100)
        self.broken = True

    def _check(self) -> None:
        if self.broken:
            raise StoreError("redis cache redis://127.0.0.1:1/0: get failed: ConnectionError")

    async def get(self, key: str) -> CacheEntry | None:
        self._check()
        return await super().get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        self._check()
        return await super().set(key, entry, ttl, tti)

    async def count(self) -> int:
        self._check()
        return await super().count()

    async def total_bytes(self) -> int:
        self._check()
        return await super().total_bytes()

    async def clear(self) -> None:
        self._check()
        await super().clear()

    async def clear_tenant(self, tenant: str | None) -> int:
        self._check()
        return await super().clear_tenant(tenant)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_stats_and_clear_answer_503_while_the_store_fails() -> None:
    settings = make_settings()
    store = BrokenStore()
    app = create_app(settings, providers={"test-model": MockProvider.constant("x")}, store=store)
    async with serve(app) as root, httpx.AsyncClient(base_url=root) as raw:
        stats = await raw.get("/v1/cache/stats", headers=_bearer(ADMIN_KEY))
        cleared = await raw.delete("/v1/cache", headers=_bearer(ADMIN_KEY))
        one = await raw.delete("/v1/cache", headers=_bearer(KEY_A))
        chat = await raw.post(
            "/v1/chat/completions",
            headers=_bearer(KEY_A),
            json={"model": "test-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        store.broken = False
        healthy = await raw.get("/v1/cache/stats", headers=_bearer(ADMIN_KEY))
    for answer in (stats, cleared, one):
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["type"] == "server_error"
        assert error["code"] == "cache_store_unavailable"
        assert "cache store" in error["message"]
        assert "127.0.0.1:1" not in error["message"]  # where the store is stays in the log
    assert chat.status_code == 200  # the chat path fails open
    assert chat.headers["x-vex-cache"] == "miss"
    assert healthy.status_code == 200


@pytest.fixture
def redis_server() -> Iterator[Server]:
    path = binary("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed; run scripts/install-redis.sh")
    server = Server(path).start()
    try:
        yield server
    finally:
        assert server.process is not None
        server.process.send_signal(signal.SIGCONT)
        server.stop()


def _ask(raw: httpx.AsyncClient, prompt: str) -> Awaitable[httpx.Response]:
    return raw.post(
        "/v1/chat/completions",
        headers=_bearer(KEY_A),
        json={"model": "test-model", "messages": [{"role": "user", "content": prompt}]},
    )


async def test_a_hung_redis_costs_requests_almost_nothing_once_the_circuit_opens(
    redis_server: Server,
) -> None:
    # A stopped (not dead) Redis accepts connections and never answers: without a breaker
    # every request waited out each store call's timeout and retry, 8-12 s, forever.
    policy = StoreBreakerPolicy(failures=3, cooldown=0.5, timeout=0.3)
    settings = make_settings(store_url=redis_server.url, store_breaker=policy)
    upstream = MockProvider.constant("answer")
    app = create_app(settings, providers={"test-model": upstream})  # opens and guards Redis
    assert redis_server.process is not None
    async with serve(app) as root, httpx.AsyncClient(base_url=root, timeout=30) as raw:
        assert (await _ask(raw, "p")).headers["x-vex-cache"] == "miss"
        assert (await _ask(raw, "p")).headers["x-vex-cache"] == "hit"

        redis_server.process.send_signal(signal.SIGSTOP)
        started = time.perf_counter()
        first = await _ask(raw, "during 0")  # read, lease and write time out: circuit opens
        assert first.status_code == 200
        assert time.perf_counter() - started < 3 * 0.3 + 1.0
        costs = []
        for i in range(1, 21):
            started = time.perf_counter()
            answer = await _ask(raw, f"during {i}")
            costs.append(time.perf_counter() - started)
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["message"]["content"] == "answer"
        # No request waited for the store: every one is far below one store timeout.
        assert max(costs) < 0.25, costs
        assert statistics.median(costs) < 0.05, costs

        started = time.perf_counter()
        ready = await raw.get("/readyz")
        stats = await raw.get("/v1/cache/stats", headers=_bearer(ADMIN_KEY))
        metrics = (await raw.get("/metrics")).text
        assert time.perf_counter() - started < 0.5
        assert ready.status_code == 200  # it serves from upstream: still ready
        assert ready.json()["store"] is False
        assert ready.json()["store_circuit"] in ("open", "half_open")
        assert stats.status_code == 503
        assert "vex_llm_store_circuit_opened_total 1.0" in metrics
        assert "vex_llm_store_circuit_skipped_total" in metrics
        assert 'vex_llm_store_circuit_state{state="closed"} 0.0' in metrics

        redis_server.process.send_signal(signal.SIGCONT)  # back: a probe closes the circuit
        for _ in range(150):
            ready = await raw.get("/readyz")
            if ready.json()["store"]:
                break
            await asyncio.sleep(0.1)
        assert ready.json()["store_circuit"] == "closed"
        assert (await _ask(raw, "after")).headers["x-vex-cache"] == "miss"
        assert (await _ask(raw, "after")).headers["x-vex-cache"] == "hit"
        metrics = (await raw.get("/metrics")).text
        assert 'vex_llm_store_circuit_state{state="closed"} 1.0' in metrics
    assert upstream.calls == 1 + 21 + 1


def test_the_breaker_is_configured_in_cache_breaker(tmp_path: Path) -> None:
    base = (Path(__file__).parents[2] / "examples" / "vex-llm.toml").read_text()
    env = {"VEX_LLM_ADMIN_KEY": "a", "OPENAI_API_KEY": "sk-x", "TEAM_A_KEY": "k"}
    path = tmp_path / "c.toml"
    path.write_text(base.replace("failures = 3 ", "failures = 7 ").replace("timeout = 1.0 ", ""))
    policy = load_settings(path, env).store_breaker
    assert (policy.failures, policy.cooldown, policy.timeout) == (7, 5.0, 1.0)
    path.write_text(base.replace("failures = 3 ", "failures = 0 ").replace("cooldown", "cool"))
    problems = [str(p) for p in check_config(path, env)]
    assert any("cache.breaker: breaker failures must be at least 1" in p for p in problems), (
        problems
    )
    assert any("cache.breaker.cool: unknown setting" in p for p in problems), problems
