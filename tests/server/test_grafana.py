"""``examples/grafana-vex-llm.json``: a valid Grafana dashboard whose queries name only metrics
the proxy exports (read from a real proxy's ``/metrics`` after traffic)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import ADMIN_KEY, KEY_A, MODEL, proxy
from vex_llm import MockProvider
from vex_llm.cache.stores.breaker import StoreCircuit
from vex_llm.server.metrics import ProxyMetrics

DASHBOARD = Path(__file__).parents[2] / "examples" / "grafana-vex-llm.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported(text: str) -> set[str]:
    """Every series name the exposition ``text`` declares, with or without samples."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in _SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


async def test_the_grafana_dashboard_queries_only_metrics_the_proxy_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            await raw.post(
                "/chat/completions", json=body, headers={"authorization": f"Bearer {KEY_A}"}
            )
        scrape = await raw.get(
            base.removesuffix("/v1") + "/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert scrape.status_code == 200
    names = exported(scrape.text)
    store = ProxyMetrics()  # the store breaker's metrics exist with a SQLite or Redis store
    store.watch_breaker(StoreCircuit())
    names |= exported(store.render()[0].decode())

    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) >= 15
    used = {name for expr in exprs for name in re.findall(r"\bvex_llm_\w+", expr)}
    assert used - names == set(), "queries name metrics the proxy does not export"
    for required in (
        "vex_llm_requests_total",
        "vex_llm_cache_lookups_total",
        "vex_llm_tokens_saved_total",
        "vex_llm_request_duration_seconds_bucket",
        "vex_llm_dollars_saved_total",
        "vex_llm_dollars_spent_total",
    ):
        assert required in used

    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")")
