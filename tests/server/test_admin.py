"""The admin endpoints: who sees which cache figures, strict parameters, one Authorization."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import ADMIN_KEY, KEY_A, KEY_B, MODEL, proxy
from vex_llm import MockProvider
from vex_llm.server.admin import strict_query

MESSAGES = [{"role": "user", "content": "What is a cache?"}]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def ask(raw: httpx.AsyncClient, key: str, text: str = "hi") -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    return await raw.post("/chat/completions", json=body, headers=bearer(key))


async def test_a_tenant_sees_its_own_figures_and_the_admin_sees_all() -> None:
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        for _ in range(3):
            await ask(raw, KEY_A)
        await ask(raw, KEY_B)
        mine = await raw.get("/cache/stats", headers=bearer(KEY_A))
        theirs = await raw.get("/cache/stats", headers=bearer(KEY_B))
        admin = await raw.get("/cache/stats", headers=bearer(ADMIN_KEY))
        nobody = await raw.get("/cache/stats", headers=bearer("sk-nobody-0000000"))
    assert nobody.status_code == 401
    assert mine.status_code == theirs.status_code == admin.status_code == 200
    a, b, everything = mine.json(), theirs.json(), admin.json()
    assert a["tenant"] == "tenant-a"
    assert (a["hits"], a["misses"]) == (2, 1)
    assert a["models"][MODEL]["hits"] == 2
    assert (b["tenant"], b["hits"], b["misses"]) == ("tenant-b", 0, 1)
    # Store-wide figures and the other tenants stay with the admin.
    for view in (a, b):
        assert "entries" not in view
        assert "tenants" not in view
        assert "tenant-b" not in str(a)
    assert (everything["hits"], everything["misses"], everything["entries"]) == (2, 2, 2)
    assert set(everything["tenants"]) == {"tenant-a", "tenant-b"}
    assert everything["tenants"]["tenant-a"]["hits"] == 2


@pytest.mark.parametrize(
    "query",
    [
        "TENANT=tenant-a",
        "tenant[]=tenant-a",
        "tenant%00=tenant-a",
        "tenant=a&tenant=b",
        "tenant",
        "all=1",
        "&&",
        "tenant=%ff",
        "x=1&tenant=a",
    ],
)
async def test_a_clear_with_a_parameter_not_understood_is_400_and_clears_nothing(
    query: str,
) -> None:
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        await ask(raw, KEY_A)
        refused = await raw.delete(f"/cache?{query}", headers=bearer(ADMIN_KEY))
        again = await ask(raw, KEY_A)
    assert refused.status_code == 400, refused.text
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    assert again.headers["x-vex-cache"] == "hit"


async def test_a_clear_with_a_body_is_400_and_clears_nothing() -> None:
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        await ask(raw, KEY_A)
        refused = await raw.request(
            "DELETE", "/cache", json={"tenant": "tenant-a"}, headers=bearer(ADMIN_KEY)
        )
        stats = await raw.get("/cache/stats?x=1", headers=bearer(ADMIN_KEY))
        again = await ask(raw, KEY_A)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "body"
    assert stats.status_code == 400
    assert again.headers["x-vex-cache"] == "hit"


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
@pytest.mark.parametrize("path", ["/chat/completions", "/models", "/cache/stats", "/cache"])
async def test_two_credential_headers_are_refused(path: str, header: str) -> None:
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        headers = [(header, f"Bearer {KEY_A}"), (header.upper(), f"Bearer {ADMIN_KEY}")]
        method = {"/chat/completions": "POST", "/cache": "DELETE"}.get(path, "GET")
        refused = await raw.request(method, path, headers=headers, json={"model": MODEL})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == header


def test_strict_query_accepts_exactly_the_known_parameters() -> None:
    assert strict_query("") == {}
    assert strict_query("tenant=a%20b", ["tenant"]) == {"tenant": "a b"}
