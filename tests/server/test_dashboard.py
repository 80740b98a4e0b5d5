"""``GET /ui`` in a real headless browser: what the page shows is what ``/v1/cache/stats`` says.

Each browser test starts one proxy (a mock upstream with a little latency, two tenants, two
models), makes traffic with hits, misses, coalesced calls, a 404 and a 401, opens the page in
Debian's chromium (``tests/server/browser.py``), answers the browser's credential prompt with a
key, waits for the page to draw, reads every figure from the DOM (``data-path`` says where in
the stats JSON it comes from, ``data-value`` what it got) and compares them with
``/v1/cache/stats`` fetched at the same moment (no traffic in between). Set
``VEX_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to keep a screenshot of the admin's page.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import itertools
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.browser import Tab, chromium_binary, launched
from tests.server.conftest import ADMIN_KEY, KEY_A, KEY_B, make_settings, proxy
from vex_llm import MockProvider
from vex_llm.pricing import Price
from vex_llm.quota import TenantQuota
from vex_llm.server.dashboard import SECURITY_HEADERS
from vex_llm.server.settings import Settings, TenantSettings, hash_key

MODELS = {"gpt-4o-mini": "gpt-4o-mini", "claude-haiku": "claude-haiku"}
UPSTREAM_LATENCY = 0.04  # long enough for identical concurrent calls to coalesce
FIELDS = (
    "requests",
    "hits",
    "misses",
    "coalesced",
    "tokens_saved",
    "errors",
    "hit_rate",
    "dollars_saved",
    "dollars_spent",
)
# Rate-limit headroom refills with time: the page's figure may be a poll older than the API's.
REFILLING = ("remaining", "reset_seconds")
READY = "document.getElementById('app')?.dataset.ready === 'true'"
SHOWN = """[...document.querySelectorAll('[data-path]')].map(
    (e) => [JSON.parse(e.dataset.path), JSON.parse(e.dataset.value), e.textContent])"""

needs_chromium = pytest.mark.skipif(
    chromium_binary() is None,
    reason="Debian's chromium is not installed and could not be (scripts/install-chromium.sh)",
)


def settings() -> Settings:
    """Two tenants, two priced models; tenant A with rate limits and budgets, B a daily budget
    only (rate limits high enough never to refuse the tests' traffic)."""
    quota_a = TenantQuota(
        requests_per_minute=100_000,
        tokens_per_minute=10_000_000,
        daily_budget_usd=5.0,
        monthly_budget_usd=100.0,
    )
    return make_settings(
        models=MODELS,
        upstream={"price": Price(15.0, 60.0)},
        tenants=(
            TenantSettings("tenant-a", (hash_key(KEY_A),), quota_a),
            TenantSettings("tenant-b", (hash_key(KEY_B),), TenantQuota(daily_budget_usd=1.0)),
        ),
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def ask(raw: httpx.AsyncClient, key: str, model: str, text: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return await raw.post("/chat/completions", json=body, headers=bearer(key))


async def traffic(raw: httpx.AsyncClient, round_: int = 0) -> None:
    """Hits, misses and coalesced calls for both tenants on both models, a 404 and a 401."""
    a, b = list(MODELS)
    for _ in range(3):
        assert (await ask(raw, KEY_A, a, f"what is a cache? {round_}")).status_code == 200
    same = [ask(raw, KEY_A, b, f"coalesce me {round_}") for _ in range(4)]
    outcomes = [r.headers["x-vex-cache"] for r in await asyncio.gather(*same)]
    assert outcomes.count("miss") <= 1, outcomes  # one upstream call at most
    for _ in range(2):
        assert (await ask(raw, KEY_B, a, f"hello {round_}")).status_code == 200
    assert (await ask(raw, KEY_B, "no-such-model", "x")).status_code == 404
    assert (await ask(raw, "sk-nobody-000000000", a, "x")).status_code == 401


def at(doc: Any, path: list[str]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def timeless(stats: dict[str, Any]) -> dict[str, Any]:
    """``stats`` without the figures that change by themselves (ages of the windows)."""
    return {
        **{k: v for k, v in stats.items() if k != "uptime_seconds"},
        "last_hour": {k: v for k, v in stats["last_hour"].items() if k != "seconds"},
    }


def expected_paths(api: dict[str, Any]) -> set[tuple[str, ...]]:
    """Where the page must show a figure: each field the API gives, per window, per tenant
    and model; and each configured budget and rate limit."""
    if "tenant" in api:  # a tenant's own view
        windows = [((), api), (("last_hour",), api["last_hour"])]
        tenants = [(base, fig) for base, fig in windows]
        quotas = [((), api)]
    else:
        tenants = [(("tenants", t), f) for t, f in api["tenants"].items()]
        tenants += [
            (("last_hour", "tenants", t), f) for t, f in api["last_hour"]["tenants"].items()
        ]
        tenants += [(("all_tenants",), api["all_tenants"])]
        tenants += [(("last_hour", "all_tenants"), api["last_hour"]["all_tenants"])]
        quotas = [(("tenants", t), f) for t, f in api["tenants"].items() if t != "_anonymous"]
    paths: set[tuple[str, ...]] = set()
    for base, fig in tenants:
        rows = [(base, fig)] + [((*base, "models", m), f) for m, f in fig["models"].items()]
        for where, figures in rows:
            paths |= {(*where, field) for field in FIELDS if field in figures}
            paths |= {(*where, "latency_ms", q) for q in ("p50", "p99")}
    for base, fig in quotas:
        for part, names in (("limits", ("limit", "remaining")), ("budget", ("limit_usd",))):
            for period, figures in (fig.get(part) or {}).items():
                if figures is not None:
                    paths |= {(*base, part, period, name) for name in names}
    return paths


def assert_page_equals_api(shown: list[list[Any]], api: dict[str, Any]) -> None:
    assert shown, "the page shows no figures"
    for path, value, text in shown:
        if path[-1] in REFILLING:
            limit = at(api, path[:-1])["limit"]
            assert 0 <= value <= limit
            assert abs(at(api, path) - value) <= limit / 60 * 10, path  # 10 s of refill
            continue
        assert at(api, path) == value, f"{path}: page {value!r}, API {at(api, path)!r}"
        if path[-1] in ("requests", "hits", "misses", "coalesced", "tokens_saved", "errors"):
            assert text == f"{value:,}", (path, text)
        elif path[-1] == "hit_rate":
            assert abs(float(text.rstrip(" %")) - value * 100) <= 0.051, (path, text)
    missing = expected_paths(api) - {tuple(p) for p, _, _ in shown}
    assert not missing, f"figures the API gives but the page does not show: {sorted(missing)}"


@needs_chromium
async def test_the_admin_page_shows_every_tenant_as_the_api_does_and_updates_live(
    tmp_path: Path,
) -> None:
    upstream = MockProvider.constant("A cache keeps answers.", latency=UPSTREAM_LATENCY)
    async with proxy(upstream, settings()) as base, httpx.AsyncClient(base_url=base) as raw:
        origin = base.removesuffix("/v1")
        await traffic(raw)
        async with launched(tmp_path / "profile") as browser:
            tab = await browser.new_tab()
            await tab.open(f"{origin}/ui", ADMIN_KEY)
            await tab.wait_for(READY)
            shown = await tab.evaluate(SHOWN)
            api = (await raw.get("/cache/stats", headers=bearer(ADMIN_KEY))).json()
            assert_page_equals_api(shown, api)
            assert await tab.evaluate("document.getElementById('app').dataset.admin") == "true"
            assert {"tenant-a", "tenant-b"} <= set(api["tenants"])
            assert api["all_tenants"]["coalesced"] == 3
            assert api["all_tenants"]["dollars_saved"] > 0
            assert api["tenants"]["tenant-a"]["limits"]["requests"]["limit"] == 100_000
            assert api["tenants"]["tenant-b"]["limits"]["requests"] is None
            assert api["all_tenants"]["latency_ms"]["p99"] >= UPSTREAM_LATENCY * 1000 * 0.9

            # Live: more traffic shows up without a reload, on the browser's remembered key.
            await traffic(raw, round_=1)
            api = (await raw.get("/cache/stats", headers=bearer(ADMIN_KEY))).json()
            requests = api["all_tenants"]["requests"]
            await tab.wait_for(
                """document.querySelector('[data-path=\\'["all_tenants","requests"]\\']')"""
                f"?.dataset.value === '{requests}'"
            )
            assert_page_equals_api(await tab.evaluate(SHOWN), api)
            assert tab.challenges == 1, "the page's own requests should reuse the typed key"
            screenshot = os.environ.get("VEX_DASHBOARD_SCREENSHOT")
            if screenshot:
                await keep_a_screenshot(tab, raw, Path(screenshot))


async def keep_a_screenshot(tab: Tab, raw: httpx.AsyncClient, path: Path) -> None:
    """A screenshot after several polls of steady traffic (prompts repeat more and more, so
    the live chart's hit ratio climbs)."""

    async def steady() -> None:
        for round_ in itertools.count(2):
            await traffic(raw, round_=round_ % 4)
            await asyncio.sleep(0.3)

    load = asyncio.create_task(steady())
    try:
        await tab.wait_for("Number(document.getElementById('app').dataset.updates) > 9", 60)
        await tab.screenshot(path)
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load


@needs_chromium
async def test_a_tenant_key_sees_only_its_own_tenant_and_no_key_gets_a_401(tmp_path: Path) -> None:
    upstream = MockProvider.constant("A cache keeps answers.", latency=UPSTREAM_LATENCY)
    async with proxy(upstream, settings()) as base, httpx.AsyncClient(base_url=base) as raw:
        origin = base.removesuffix("/v1")
        await traffic(raw)
        async with launched(tmp_path / "profile") as browser:
            tab = await browser.new_tab()
            await tab.open(f"{origin}/ui", KEY_A)
            await tab.wait_for(READY)
            shown = await tab.evaluate(SHOWN)
            text = await tab.evaluate("document.body.innerText")
            api = (await raw.get("/cache/stats", headers=bearer(KEY_A))).json()
            assert api["tenant"] == "tenant-a"
            assert_page_equals_api(shown, api)
            assert await tab.evaluate("document.getElementById('app').dataset.admin") == "false"
            assert "tenant-a" in text
            for other in ("tenant-b", "_anonymous", "All tenants"):
                assert other not in text

            # Without a key the browser asks; cancelling leaves the 401 and no dashboard.
            nobody = await browser.new_tab()
            await nobody.open(f"{origin}/ui", None)
            await nobody.wait_for("document.body?.innerText.includes('invalid_api_key')")
            assert nobody.challenges >= 1
            assert await nobody.evaluate("document.getElementById('app')") is None


async def test_the_page_and_its_data_need_a_key_and_the_key_never_goes_in_the_url() -> None:
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient() as raw:
        origin = base.removesuffix("/v1")
        for path in ("/ui", "/ui/stats"):
            missing = await raw.get(f"{origin}{path}")
            wrong = await raw.get(f"{origin}{path}", auth=("", "sk-wrong-0000000000"))
            assert missing.status_code == wrong.status_code == 401
            assert missing.json()["error"]["code"] == "invalid_api_key"
            assert ADMIN_KEY not in missing.text
        challenge = (await raw.get(f"{origin}/ui")).headers["www-authenticate"]
        assert challenge.startswith("Basic realm=")
        # A key in the query string is not a credential (it would land in access logs).
        assert (await raw.get(f"{origin}/ui", params={"key": ADMIN_KEY})).status_code == 401
        for auth in ({"auth": ("", ADMIN_KEY)}, {"auth": (ADMIN_KEY, "")}):
            page = await raw.get(f"{origin}/ui", **auth)  # type: ignore[arg-type]
            assert page.status_code == 200
        page = await raw.get(f"{origin}/ui", headers=bearer(ADMIN_KEY))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
        assert page.headers["cache-control"] == "no-store"
        data = await raw.get(f"{origin}/ui/stats", auth=("", KEY_B))
        api = await raw.get(f"{base}/cache/stats", headers=bearer(KEY_B))
        assert timeless(data.json()) == timeless(api.json())
        assert data.headers["cache-control"] == "no-store"
        # The assets hold no figures; anything else under /ui is a 404.
        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            asset = await raw.get(f"{origin}/ui/{name}")
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith(kind)
        assert (await raw.get(f"{origin}/ui/admin.py")).status_code == 404
        assert (
            await raw.get(f"{origin}/ui/stats", params={"x": "1"}, auth=("", KEY_B))
        ).status_code == 400


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN: every URL in the shipped files is relative (the SVG namespace is a name)."""
    ui = importlib.resources.files("vex_llm.server.ui")
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = ui.joinpath(name).read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text
