"""The proxy while its cache store fails: admin endpoints say 503, the chat path fails open."""

from __future__ import annotations

import httpx

from tests.server.conftest import ADMIN_KEY, KEY_A, make_settings, serve
from vex_llm import MockProvider
from vex_llm.cache.entry import CacheEntry
from vex_llm.cache.stores import MemoryStore, StoreError
from vex_llm.server.app import create_app


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


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_stats_and_clear_answer_503_while_the_store_fails() -> None:
    settings = make_settings()
    store = BrokenStore()
    app = create_app(settings, providers={"test-model": MockProvider.constant("x")}, store=store)
    async with serve(app) as root, httpx.AsyncClient(base_url=root) as raw:
        stats = await raw.get("/v1/cache/stats", headers=_bearer(KEY_A))
        cleared = await raw.delete("/v1/cache", headers=_bearer(ADMIN_KEY))
        chat = await raw.post(
            "/v1/chat/completions",
            headers=_bearer(KEY_A),
            json={"model": "test-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        store.broken = False
        healthy = await raw.get("/v1/cache/stats", headers=_bearer(KEY_A))
    for answer in (stats, cleared):
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["type"] == "server_error"
        assert error["code"] == "cache_store_unavailable"
        assert "cache store" in error["message"]
        assert "127.0.0.1:1" not in error["message"]  # where the store is stays in the log
    assert chat.status_code == 200  # the chat path fails open
    assert chat.headers["x-vex-cache"] == "miss"
    assert healthy.status_code == 200
