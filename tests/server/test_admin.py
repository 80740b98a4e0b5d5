"""The admin endpoints: who sees which cache figures, strict parameters, one Authorization."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.server.conftest import ADMIN_KEY, KEY_A, KEY_B, MODEL, proxy
from vex_llm import MockProvider
from vex_llm.server.admin import strict_query
from vex_llm.server.clearing import ClearScope, clear_scope
from vex_llm.server.wire import WireError

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


async def test_the_admin_clears_any_tenant_and_a_tenant_only_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "vex_llm")
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:

        async def outcomes(key: str) -> list[str]:
            return [(await ask(raw, key, text)).headers["x-vex-cache"] for text in ("hi", "yo")]

        async def clear(key: str | None, query: str = "") -> httpx.Response:
            return await raw.delete(f"/cache{query}", headers=bearer(key) if key else {})

        assert await outcomes(KEY_A) == await outcomes(KEY_B) == ["miss", "miss"]
        other = await clear(KEY_A, "?tenant=tenant-b")
        refused = [await clear(None), await clear("sk-nobody-0000000"), await clear(None, "?x")]
        empty = await clear(ADMIN_KEY, "?tenant=")
        mine = await clear(KEY_A)
        assert await outcomes(KEY_B) == ["hit", "hit"]
        assert await outcomes(KEY_A) == ["miss", "miss"]
        named = await clear(KEY_A, "?tenant=tenant-a")
        by_admin = await clear(ADMIN_KEY, "?tenant=tenant-b")
        assert await outcomes(KEY_B) == ["miss", "miss"]
        everything = await clear(ADMIN_KEY)
    assert other.status_code == 403
    assert set(other.json()["error"]) == {"message", "type", "param", "code"}
    assert other.json()["error"]["type"] == "permission_error"
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert empty.status_code == 400
    assert mine.json() == {"cleared": True, "tenant": "tenant-a", "entries_removed": 2}
    assert named.json() == {"cleared": True, "tenant": "tenant-a", "entries_removed": 2}
    assert by_admin.json() == {"cleared": True, "tenant": "tenant-b", "entries_removed": 2}
    assert everything.json() == {"cleared": True, "entries_removed": 2}
    logged = caplog.text
    assert "tenant 'tenant-b' cleared by the admin (2 entries)" in logged
    assert "tenant 'tenant-a' cleared by the tenant" in logged
    assert KEY_A not in logged
    assert ADMIN_KEY not in logged


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


@pytest.mark.parametrize(
    ("query", "is_admin", "own", "has_admin", "expected"),
    [
        ("", True, None, True, ClearScope(None, "admin")),
        ("tenant=x", True, None, True, ClearScope("x", "admin")),
        ("", False, "a", True, ClearScope("a", "tenant")),
        ("tenant=a", False, "a", False, ClearScope("a", "tenant")),
        ("tenant=b", False, "a", True, 403),
        ("", False, None, True, 401),
        ("tenant=a", False, None, False, 403),
        ("tenant=", True, None, True, 400),
        ("tenant=a&all=1", False, "a", True, 400),
    ],
)
def test_clear_scope_decides_who_clears_what(
    query: str, is_admin: bool, own: str | None, has_admin: bool, expected: object
) -> None:
    def scope() -> ClearScope:
        return clear_scope(query, {}, is_admin=is_admin, own=own, has_admin=has_admin)

    if isinstance(expected, ClearScope):
        assert scope() == expected
    else:
        with pytest.raises(WireError) as refused:
            scope()
        assert refused.value.status == expected
