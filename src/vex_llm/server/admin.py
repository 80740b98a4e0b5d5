"""The admin side of the proxy: who sees which cache figures, and parameters taken strictly.

Access rule of ``GET /v1/cache/stats``: the admin key sees everything — the store's entries,
bytes and evictions, every model's cache counters and every tenant's figures; a tenant key
sees only its own figures (requests, lookups by outcome, tokens saved, upstream errors,
dollars spent and saved and latency p50/p99, by model), never the store-wide numbers, which
tell of the other tenants' traffic. Each view has the same figures over the ``last_hour``
(``window_figures``; the window itself is ``server.window``'s).

Admin endpoints refuse what they do not understand with a 400: an unknown, misspelt
(``TENANT``), decorated (``tenant[]``, ``tenant%00``), repeated or malformed query parameter,
and any request body. A request that is not understood must never fall through to the
broadest action (clearing the whole cache). Pure functions over values: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

from vex_llm.cache.stats import CacheStats
from vex_llm.server.latency import Buckets, latency_ms
from vex_llm.server.wire import WireError

__all__ = [
    "admin_figures",
    "compact",
    "one_tenant",
    "refuse_body",
    "strict_query",
    "tenant_figures",
    "window_figures",
]

#: One Prometheus sample: (name, labels, value).
Sample = tuple[str, Mapping[str, str], float]

_OUTCOMES = ("hit", "miss", "coalesced", "bypass")
_COUNTER_NAMES = {"hit": "hits", "miss": "misses", "coalesced": "coalesced", "bypass": "bypasses"}


def strict_query(query: str, allowed: Iterable[str] = ()) -> dict[str, str]:
    """The query parameters, each one of ``allowed`` and given once; else a 400 ``WireError``."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise WireError("the query string is malformed", param="query") from None
    allowed = set(allowed)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise WireError(f"unknown query parameter {name!r} (known: {known})", param=name)
        if name in params:
            raise WireError(f"query parameter {name!r} is given twice", param=name)
        params[name] = value
    return params


def refuse_body(headers: Mapping[str, str]) -> None:
    """A 400 ``WireError`` when the request carries a body (the endpoint takes none)."""
    length = headers.get("content-length")
    if "transfer-encoding" in headers or (length is not None and length.strip() != "0"):
        raise WireError("this endpoint takes no request body", param="body")


def _lookups(counters: Mapping[str, float]) -> float:
    return sum(counters.get(_COUNTER_NAMES[o], 0) for o in ("hit", "miss", "coalesced"))


def _with_rate(counters: dict[str, Any]) -> dict[str, Any]:
    lookups = _lookups(counters)
    counters["hit_rate"] = counters.get("hits", 0) / lookups if lookups else 0.0
    return counters


def _blank() -> dict[str, Any]:
    return {
        "requests": 0,
        "hits": 0,
        "misses": 0,
        "coalesced": 0,
        "bypasses": 0,
        "tokens_saved": 0,
        "errors": 0,
        "dollars_spent": 0.0,
        "dollars_saved": 0.0,
        "unpriced": 0,
    }


#: Sample name -> the figure it adds to (every lookup outcome is read apart, above them).
_SUMS = {
    "vex_llm_tokens_saved_total": "tokens_saved",
    "vex_llm_upstream_errors_total": "errors",
    "vex_llm_dollars_spent_total": "dollars_spent",
    "vex_llm_dollars_saved_total": "dollars_saved",
    "vex_llm_unpriced_answers_total": "unpriced",
}


_LATENCY = "vex_llm_request_duration_seconds_bucket"


def _latencies(samples: Iterable[Sample]) -> dict[tuple[str, str], Buckets]:
    """The duration buckets per (tenant, model), summed over endpoints and outcomes."""
    per: dict[tuple[str, str], Buckets] = {}
    for name, labels, value in samples:
        if name != _LATENCY or "tenant" not in labels or "model" not in labels:
            continue
        buckets = per.setdefault((labels["tenant"], labels["model"]), {})
        bound = float(labels["le"])  # "+Inf" reads as inf
        buckets[bound] = buckets.get(bound, 0.0) + value
    return per


#: Labels besides tenant and model that the figures read, by sample name.
_READ = {"vex_llm_cache_lookups_total": ("outcome",), _LATENCY: ("le",)}


def compact(samples: Iterable[Sample]) -> list[Sample]:
    """The samples the figures read, summed over the labels they ignore (endpoint, status,
    error type, a latency's outcome): the same figures from several times fewer samples, so a
    stats request and a snapshot of the last hour cost that much less."""
    sums: dict[tuple[str, str, str, tuple[str, ...]], float] = {}
    for name, labels, value in samples:
        tenant, model = labels.get("tenant"), labels.get("model")
        if tenant is None or model is None or not name.endswith(("_total", "_bucket")):
            continue
        key = (name, tenant, model, tuple(labels.get(k, "") for k in _READ.get(name, ())))
        sums[key] = sums.get(key, 0.0) + value
    return [
        (
            name,
            {
                "tenant": tenant,
                "model": model,
                **dict(zip(_READ.get(name, ()), extra, strict=True)),
            },
            v,
        )
        for (name, tenant, model, extra), v in sums.items()
    ]


def tenant_figures(samples: Iterable[Sample]) -> dict[str, Any]:
    """Per tenant, per model: requests answered (any status), lookups by outcome, tokens
    saved, upstream errors, dollars spent and saved (see ``server.money``; ``unpriced``:
    answers of upstreams without a price, left out of the dollars) and latency p50/p99 in ms
    (``server.latency``: bucket-interpolated).

    ``samples`` are the proxy's Prometheus samples ``(name, labels, value)``.
    """
    samples = list(samples)
    latencies = _latencies(samples)
    per: dict[str, dict[str, dict[str, Any]]] = {}

    def slot(labels: Mapping[str, str]) -> dict[str, Any] | None:
        tenant, model = labels.get("tenant"), labels.get("model")
        if tenant is None or model is None:
            return None
        return per.setdefault(tenant, {}).setdefault(model, _blank())

    for name, labels, value in samples:
        counters = slot(labels) if name.endswith("_total") else None
        if counters is None:
            continue
        if name == "vex_llm_requests_total":
            counters["requests"] += int(value)
        elif name == "vex_llm_cache_lookups_total" and labels.get("outcome") in _OUTCOMES:
            counters[_COUNTER_NAMES[labels["outcome"]]] += int(value)
        elif name in _SUMS:
            field = _SUMS[name]
            counters[field] += value if field.startswith("dollars") else int(value)
    for tenant, model in latencies:
        slot({"tenant": tenant, "model": model})
    figures: dict[str, Any] = {}
    for tenant, models in sorted(per.items()):
        totals = _blank()
        merged: Buckets = {}
        for model, counters in models.items():
            for field in totals:
                totals[field] += counters[field]
            _with_rate(counters)
            buckets = latencies.get((tenant, model), {})
            counters["latency_ms"] = latency_ms(buckets)
            for bound, count in buckets.items():
                merged[bound] = merged.get(bound, 0.0) + count
        totals = {**_with_rate(totals), "latency_ms": latency_ms(merged)}
        figures[tenant] = {**totals, "models": dict(sorted(models.items()))}
    return figures


def _zeros() -> dict[str, Any]:
    return {**_with_rate(_blank()), "latency_ms": latency_ms({}), "models": {}}


def one_tenant(figures: Mapping[str, Any], tenant: str) -> dict[str, Any]:
    """What ``tenant`` may see: its own figures (zeros when it has made no request yet)."""
    own = figures.get(tenant) or _zeros()
    return {"tenant": tenant, **own}


_EVERYONE = "*"


def _as_one_tenant(samples: Iterable[Sample]) -> Iterator[Sample]:
    for name, labels, value in samples:
        if "tenant" in labels:
            yield name, {**labels, "tenant": _EVERYONE}, value


def _everyone(samples: Iterable[Sample]) -> dict[str, Any]:
    """The figures of all tenants together, per model: ``tenant_figures`` over samples that
    all name one tenant, so every figure (latency too) is computed the one way."""
    return tenant_figures(_as_one_tenant(samples)).get(_EVERYONE) or _zeros()


def window_figures(
    samples: Iterable[Sample],
    hour: Iterable[Sample],
    hour_seconds: float,
    uptime_seconds: float,
    tenant: str | None,
) -> dict[str, Any]:
    """What the stats add beside the since-start figures of ``samples`` (cumulative):
    ``uptime_seconds`` and ``last_hour`` (the figures of ``hour``, the last hour's increase,
    and the ``seconds`` it really covers) for ``tenant``'s own view; for the admin's
    (``tenant`` None) every tenant's, and all tenants' together (``all_tenants``) in both."""
    extra: dict[str, Any] = {"uptime_seconds": round(uptime_seconds, 3)}
    seconds = round(hour_seconds, 3)
    if tenant is not None:
        own = one_tenant(tenant_figures(hour), tenant)
        del own["tenant"]
        return {**extra, "last_hour": {"seconds": seconds, **own}}
    hour = list(hour)
    return {
        **extra,
        "all_tenants": _everyone(samples),
        "last_hour": {
            "seconds": seconds,
            "all_tenants": _everyone(hour),
            "tenants": tenant_figures(hour),
        },
    }


def admin_figures(stats: Mapping[str, CacheStats], tenants: Mapping[str, Any]) -> dict[str, Any]:
    """Everything: the store, each model's cache counters (dollars at its upstream's price:
    each upstream call spends once, background refreshes included), and every tenant's
    figures."""
    totals: dict[str, Any] = {}
    per_model = {}
    entries = nbytes = 0
    evictions: Mapping[str, int] = {}
    for name, s in stats.items():
        entries, nbytes, evictions = s.entries, s.bytes, s.evictions  # one store behind all
        counters = {
            "hits": s.hits,
            "misses": s.misses,
            "coalesced": s.coalesced,
            "bypasses": s.bypasses,
            "errors": s.errors,
            "store_errors": s.store_errors,
            "only_if_cached_misses": s.only_if_cached_misses,
            "stale": s.stale,
            "tokens_saved": s.tokens_saved,
            # None: this upstream has no price (unknown, not free); the totals leave it out.
            "dollars_spent": s.dollars_spent,
            "dollars_saved": s.dollars_saved,
        }
        per_model[name] = counters
        for field, value in counters.items():
            totals[field] = totals.get(field, 0) + (value or 0)
    return {
        **_with_rate(totals),
        "entries": entries,
        "bytes": nbytes,
        "evictions": dict(evictions),
        "models": per_model,
        "tenants": dict(tenants),
    }
