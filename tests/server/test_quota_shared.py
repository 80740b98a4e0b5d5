"""Two real ``vex-llm serve`` processes sharing a real Redis enforce one limit between them."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import serve
from tests.server.fake_upstream import FakeUpstream
from tests.server.processes import serving
from tests.stores.servers import Server, binary

KEYS = {"steady": "sk-steady-0123456789", "burst": "sk-burst-0123456789"}


@pytest.fixture
def redis_server() -> Iterator[Server]:
    path = binary("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed; run scripts/install-redis.sh")
    server = Server(path).start()
    try:
        yield server
    finally:
        server.stop()


def config(path: Path, upstream: str, store: str) -> Path:
    tenants = "".join(
        f'[tenants.{name}]\nkey_sha256 = ["{hashlib.sha256(key.encode()).hexdigest()}"]\n'
        for name, key in KEYS.items()
    )
    path.write_text(
        f'[cache]\nstore = "{store}"\n\n'
        "[quota]\nrequests_per_minute = 3\n\n"  # one back every 20 s: slack under load
        f'[upstreams.fake]\nkind = "openai"\nbase_url = "{upstream}/v1"\n\n' + tenants
    )
    return path


async def test_two_proxies_sharing_redis_allow_exactly_the_limit_between_them(
    redis_server: Server, tmp_path: Path
) -> None:
    fake = FakeUpstream()
    async with serve(fake.app) as upstream, AsyncExitStack() as stack:
        path = config(tmp_path / "vex.toml", upstream, redis_server.url)
        proxies = await asyncio.gather(
            stack.enter_async_context(serving("--config", str(path))),
            stack.enter_async_context(serving("--config", str(path))),
        )
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))

        async def ask(i: int, tenant: str, text: str) -> httpx.Response:
            return await client.post(
                f"{proxies[i % 2].base}/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": text}]},
                headers={"authorization": f"Bearer {KEYS[tenant]}"},
            )

        # One after the other, alternating proxies: one count, one set of headers.
        steady = [await ask(i, "steady", "same question") for i in range(6)]
        # All at once, spread over both: exactly the limit gets through.
        burst = await asyncio.gather(*(ask(i, "burst", f"question {i}") for i in range(12)))
    assert [r.status_code for r in steady] == [200] * 3 + [429] * 3
    assert [r.headers["x-ratelimit-remaining-requests"] for r in steady[:3]] == ["2", "1", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in steady)
    assert [r.headers["x-vex-cache"] for r in steady[:3]] == ["miss", "hit", "hit"]
    assert all(1 <= int(r.headers["retry-after"]) <= 20 for r in steady[3:])
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in steady[3:])
    statuses = sorted(r.status_code for r in burst)
    assert statuses == [200] * 3 + [429] * 9
