"""Reading ``Settings`` from one TOML file plus environment overrides.

Reading collects *every* problem with its location (``file.toml: upstreams.gpt.kind``)
instead of stopping at the first, so ``vex-llm config check`` can list them all. Client and
admin keys are kept only as SHA-256 digests: a hex digest written in the file, or the value of
a named environment variable, hashed at load.

The file::

    [server]                # all optional
    host = "127.0.0.1"
    port = 8080
    max_body_bytes = 8388608
    max_prompt_bytes = 4194304  # text of the non-system turns (the body cap stays the outer bound)
    max_system_bytes = 1048576  # text of the system/developer turns
    metrics_auth = false    # true: /metrics needs the admin key
    retry_after_cap = 60    # seconds; an upstream's longer Retry-After is cut to this
    open_tenant = "local"   # any client key maps to this tenant (loopback hosts only)
    workers = 1             # processes serving the port; > 1 needs a SQLite or Redis store

    [cache]
    store = "sqlite:////var/cache/vex-llm/cache.db"   # memory:// | sqlite:///... | redis://...
    preset = "default"      # default | aggressive | conservative; fields below override it
    max_entries = 1000
    max_bytes = 67108864
    ttl = 3600              # seconds, or false for none
    tti = 1800

    [cache.breaker]         # the circuit breaker around a SQLite/Redis store
    failures = 3            # consecutive failed or timed-out store calls that open it
    cooldown = 5            # seconds the store is skipped before a background probe
    timeout = 1.0           # seconds a request waits for one store call
    admin_timeout = 30      # seconds for count/clear (stats, DELETE /v1/cache)
    enabled = true

    [admin]
    key_env = "VEX_LLM_ADMIN_KEY"   # and/or key_sha256 = ["<hex>", ...]

    [upstreams."gpt-4o-mini"]       # the model name clients ask for
    kind = "openai"                 # openai | ollama | anthropic
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    model = "gpt-4o-mini"           # the name sent upstream (default: the table's name)
    timeout = 60
    fallbacks = ["local"]           # and retry, breaker, stale_if_error: see config_resilience
    price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }   # dollars; default: catalogue

    [quota]                         # rate limits and budgets: see config_quota
    requests_per_minute = 600

    [tenants.acme]
    key_sha256 = ["<hex sha256 of the client key>"]
    key_env = "ACME_KEY"
    tokens_per_minute = 100000      # and the other [quota] fields, for this tenant

Environment overrides (the server reads them; library code never does): ``VEX_LLM_HOST``,
``VEX_LLM_PORT``, ``VEX_LLM_STORE``, ``VEX_LLM_MAX_BODY_BYTES``, ``VEX_LLM_MAX_PROMPT_BYTES``,
``VEX_LLM_MAX_SYSTEM_BYTES``, ``VEX_LLM_METRICS_AUTH``, ``VEX_LLM_RETRY_AFTER_CAP``,
``VEX_LLM_WORKERS`` and ``VEX_LLM_ADMIN_KEY`` (a raw admin key, hashed at load).
The connection and answer limits of ``[server]`` (``max_header_bytes``, ``header_timeout``,
``body_timeout``, ``keepalive_timeout``, ``max_connections``, ``max_answer_bytes``,
``max_line_bytes``: see :mod:`vex_llm.server.limits`) each have ``VEX_LLM_<NAME>``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.stores.breaker import StoreBreakerPolicy
from vex_llm.models import InputLimits
from vex_llm.pricing import Price
from vex_llm.quota.policy import TenantQuota
from vex_llm.server.config_quota import QUOTA_SETTINGS, read_quota
from vex_llm.server.config_resilience import RESILIENCE_SETTINGS, read_resilience
from vex_llm.server.limits import LIMIT_TYPES, ServerLimits
from vex_llm.server.settings import (
    DEFAULT_MAX_BODY_BYTES,
    UPSTREAM_KINDS,
    ConfigError,
    Problem,
    Settings,
    SettingsDraft,
    TenantSettings,
    UpstreamSettings,
    check_settings,
    hash_key,
)

__all__ = ["check_config", "load_settings", "settings_from_document"]

_PRESETS: Mapping[str, Callable[[], LLMCacheConfig]] = {
    "default": LLMCacheConfig.default,
    "aggressive": LLMCacheConfig.aggressive,
    "conservative": LLMCacheConfig.conservative,
}


class _Reader:
    """Typed access to a parsed TOML document that records problems instead of raising."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(f"{self.source}: {where}", message))

    def table(self, doc: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            self.problem(where, "must be a table")
            return {}
        return value

    def unknown(self, table: Mapping[str, Any], known: set[str], where: str) -> None:
        for name in sorted(set(table) - known):
            self.problem(f"{where}.{name}" if where else name, "unknown setting")

    def get(
        self,
        table: Mapping[str, Any],
        name: str,
        kind: type | tuple[type, ...],
        where: str,
        default: Any = None,
    ) -> Any:
        if name not in table:
            return default
        value = table[name]
        # bool is an int in Python, never in a config file.
        wrong_bool = isinstance(value, bool) and kind is not bool and bool not in _tuple(kind)
        if wrong_bool or not isinstance(value, kind):
            self.problem(f"{where}.{name}", f"must be {_kind_name(kind)}, got {value!r}")
            return default
        return value

    def key_hashes(
        self, table: Mapping[str, Any], where: str, env: Mapping[str, str]
    ) -> tuple[bytes, ...]:
        hashes: list[bytes] = []
        raw = table.get("key_sha256", [])
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list):
            self.problem(f"{where}.key_sha256", "must be a hex digest or a list of them")
            items = []
        for i, item in enumerate(items):
            try:
                digest = bytes.fromhex(item) if isinstance(item, str) else b""
            except ValueError:
                digest = b""
            if len(digest) != 32:
                self.problem(f"{where}.key_sha256[{i}]", "must be 64 hex digits (a SHA-256)")
            else:
                hashes.append(digest)
        var = self.get(table, "key_env", str, where)
        if var is not None:
            value = env.get(var)
            if not value:
                self.problem(f"{where}.key_env", f"environment variable {var} is not set")
            else:
                hashes.append(hash_key(value))
        return tuple(hashes)


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind))


_NUMBER = (int, float)


def _read_cache(r: _Reader, doc: Mapping[str, Any]) -> tuple[str, LLMCacheConfig]:
    cache = r.table(doc, "cache", "cache")
    r.unknown(
        cache, {"store", "preset", "max_entries", "max_bytes", "ttl", "tti", "breaker"}, "cache"
    )
    store = r.get(cache, "store", str, "cache", "memory://")
    preset = r.get(cache, "preset", str, "cache", "default")
    if preset not in _PRESETS:
        r.problem("cache.preset", f"must be one of {sorted(_PRESETS)}")
        preset = "default"
    base = _PRESETS[preset]()
    fields: dict[str, Any] = {}
    for name in ("max_entries", "max_bytes"):
        fields[name] = r.get(cache, name, int, "cache", getattr(base, name))
    for name in ("ttl", "tti"):
        value = r.get(cache, name, (*_NUMBER, bool), "cache", getattr(base, name))
        if value is True:
            r.problem(f"cache.{name}", "must be seconds or false")
            value = getattr(base, name)
        fields[name] = None if value is False else value
    try:
        config = LLMCacheConfig(**fields)
    except (TypeError, ValueError) as exc:
        r.problem("cache", str(exc))
        config = base
    return store, config


def _read_input_limits(
    r: _Reader, server: Mapping[str, Any], cache: LLMCacheConfig
) -> LLMCacheConfig:
    """``[server] max_prompt_bytes`` / ``max_system_bytes`` into the cache's input limits."""
    default = InputLimits()
    try:
        limits = InputLimits(
            max_prompt_bytes=r.get(
                server, "max_prompt_bytes", int, "server", default.max_prompt_bytes
            ),
            max_system_bytes=r.get(
                server, "max_system_bytes", int, "server", default.max_system_bytes
            ),
        )
    except (TypeError, ValueError) as exc:
        r.problem("server", str(exc))
        return cache
    return dataclasses.replace(cache, limits=limits)


def _read_breaker(r: _Reader, doc: Mapping[str, Any]) -> StoreBreakerPolicy:
    cache = doc.get("cache")
    table = r.table(cache, "breaker", "cache.breaker") if isinstance(cache, dict) else {}
    r.unknown(
        table, {"failures", "cooldown", "timeout", "admin_timeout", "enabled"}, "cache.breaker"
    )
    base = StoreBreakerPolicy()
    fields: dict[str, Any] = {
        "failures": r.get(table, "failures", int, "cache.breaker", base.failures)
    }
    for name in ("cooldown", "timeout", "admin_timeout"):
        fields[name] = float(r.get(table, name, _NUMBER, "cache.breaker", getattr(base, name)))
    fields["enabled"] = r.get(table, "enabled", bool, "cache.breaker", base.enabled)
    try:
        return StoreBreakerPolicy(**fields)
    except (TypeError, ValueError) as exc:
        r.problem("cache.breaker", str(exc))
        return base


def _read_price(r: _Reader, upstream: Mapping[str, Any], where: str) -> Price | None:
    """``price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }``: dollars per million."""
    if "price" not in upstream:
        return None
    where = f"{where}.price"
    table = upstream["price"]
    if not isinstance(table, dict):
        r.problem(where, "must be a table: { input_per_mtok = ..., output_per_mtok = ... }")
        return None
    names = ("input_per_mtok", "output_per_mtok")
    r.unknown(table, set(names), where)
    values = []
    for name in names:
        if name not in table:
            r.problem(f"{where}.{name}", "is required (dollars per million tokens)")
        values.append(r.get(table, name, _NUMBER, where))
    if None in values:
        return None
    try:
        return Price(float(values[0]), float(values[1]))
    except ValueError as exc:
        r.problem(where, str(exc))
        return None


def _read_upstreams(r: _Reader, doc: Mapping[str, Any]) -> list[UpstreamSettings]:
    upstreams: list[UpstreamSettings] = []
    known = {"kind", "base_url", "model", "api_key_env", "timeout", "price", *RESILIENCE_SETTINGS}
    for name, table in r.table(doc, "upstreams", "upstreams").items():
        where = f"upstreams.{name}"
        if not isinstance(table, dict):
            r.problem(where, "must be a table")
            continue
        r.unknown(table, known, where)
        kind = r.get(table, "kind", str, where, "openai")
        if kind not in UPSTREAM_KINDS:
            r.problem(f"{where}.kind", f"must be one of {list(UPSTREAM_KINDS)}, got {kind!r}")
        base_url = r.get(table, "base_url", str, where)
        if base_url is None:
            r.problem(f"{where}.base_url", "is required")
        elif not base_url.startswith(("http://", "https://")):
            r.problem(f"{where}.base_url", f"must be an http(s) URL, got {base_url!r}")
        timeout = r.get(table, "timeout", _NUMBER, where, 60.0)
        if timeout <= 0:
            r.problem(f"{where}.timeout", "must be positive")
        resilience, problems = read_resilience(table, where)
        for location, message in problems:
            r.problem(location, message)
        upstreams.append(
            UpstreamSettings(
                name=name,
                kind=kind,
                base_url=base_url or "",
                model=r.get(table, "model", str, where, name),
                api_key_env=r.get(table, "api_key_env", str, where),
                timeout=float(timeout),
                price=_read_price(r, table, where),
                **resilience,
            )
        )
    if not upstreams:
        r.problem("upstreams", "at least one [upstreams.MODEL] table is needed")
    return upstreams


def _read_quota(r: _Reader, doc: Mapping[str, Any]) -> TenantQuota:
    table = r.table(doc, "quota", "quota")
    r.unknown(table, set(QUOTA_SETTINGS), "quota")
    quota, problems = read_quota(table, "quota")
    for location, message in problems:
        r.problem(location, message)
    return quota or TenantQuota()


def _read_tenants(
    r: _Reader, doc: Mapping[str, Any], env: Mapping[str, str], default: TenantQuota
) -> list[TenantSettings]:
    tenants = []
    for tenant_id, table in r.table(doc, "tenants", "tenants").items():
        where = f"tenants.{tenant_id}"
        if not isinstance(table, dict):
            r.problem(where, "must be a table")
            continue
        r.unknown(table, {"key_sha256", "key_env", *QUOTA_SETTINGS}, where)
        hashes = r.key_hashes(table, where, env)
        if not hashes and not any(p.location.endswith(where + ".key_env") for p in r.problems):
            r.problem(where, "needs key_sha256 or key_env")
        quota, problems = read_quota(table, where, default)
        for location, message in problems:
            r.problem(location, message)
        tenants.append(TenantSettings(tenant_id, hashes, quota))
    return tenants


# env var -> (section, setting, parser)
_ENV: Mapping[str, tuple[str, str, Callable[[str], Any]]] = {
    "VEX_LLM_HOST": ("server", "host", str),
    "VEX_LLM_PORT": ("server", "port", int),
    "VEX_LLM_WORKERS": ("server", "workers", int),
    "VEX_LLM_MAX_BODY_BYTES": ("server", "max_body_bytes", int),
    "VEX_LLM_MAX_PROMPT_BYTES": ("server", "max_prompt_bytes", int),
    "VEX_LLM_MAX_SYSTEM_BYTES": ("server", "max_system_bytes", int),
    "VEX_LLM_RETRY_AFTER_CAP": ("server", "retry_after_cap", float),
    "VEX_LLM_METRICS_AUTH": ("server", "metrics_auth", lambda v: _parse_bool(v)),
    "VEX_LLM_STORE": ("cache", "store", str),
    **{f"VEX_LLM_{name.upper()}": ("server", name, kind) for name, kind in LIMIT_TYPES.items()},
}


def _read_limits(r: _Reader, server: Mapping[str, Any]) -> ServerLimits:
    base = ServerLimits()
    values = {
        name: r.get(server, name, int if kind is int else _NUMBER, "server", getattr(base, name))
        for name, kind in LIMIT_TYPES.items()
    }
    limits = ServerLimits(**values)
    for name, message in limits.problems():
        r.problem(f"server.{name}", message)
    return limits if not limits.problems() else base


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _apply_env(r: _Reader, doc: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, (section, name, parse) in _ENV.items():
        if var not in env:
            continue
        try:
            value = parse(env[var])
        except ValueError:
            r.problems.append(Problem(f"env {var}", f"cannot read {env[var]!r}"))
            continue
        table = doc.setdefault(section, {})
        if isinstance(table, dict):
            table[name] = value


def settings_from_document(
    doc: Mapping[str, Any], env: Mapping[str, str], source: str = "config"
) -> tuple[Settings | None, list[Problem]]:
    """Read a parsed TOML document (with ``env`` overrides) into Settings and its problems.

    Settings is None whenever a problem was found.
    """
    r = _Reader(source)
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    _apply_env(r, doc, env)
    r.unknown(doc, {"server", "cache", "admin", "upstreams", "tenants", "quota"}, "")
    server = r.table(doc, "server", "server")
    r.unknown(
        server,
        {
            "host",
            "port",
            "max_body_bytes",
            "max_prompt_bytes",
            "max_system_bytes",
            "metrics_auth",
            "retry_after_cap",
            "open_tenant",
            "workers",
        }
        | set(LIMIT_TYPES),
        "server",
    )
    store, cache = _read_cache(r, doc)
    cache = _read_input_limits(r, server, cache)
    admin = r.table(doc, "admin", "admin")
    r.unknown(admin, {"key_sha256", "key_env"}, "admin")
    admin_hashes = r.key_hashes(admin, "admin", env)
    if env.get("VEX_LLM_ADMIN_KEY"):
        admin_hashes += (hash_key(env["VEX_LLM_ADMIN_KEY"]),)
    upstreams = _read_upstreams(r, doc)
    for u in upstreams:
        if u.api_key_env is not None and not env.get(u.api_key_env):
            where = f"upstreams.{u.name}.api_key_env"
            r.problem(where, f"environment variable {u.api_key_env} is not set")
    quota = _read_quota(r, doc)
    tenants = _read_tenants(r, doc, env, quota)
    fields = {
        "host": r.get(server, "host", str, "server", "127.0.0.1"),
        "port": r.get(server, "port", int, "server", 8080),
        "max_body_bytes": r.get(server, "max_body_bytes", int, "server", DEFAULT_MAX_BODY_BYTES),
        "metrics_auth": r.get(server, "metrics_auth", bool, "server", False),
        "retry_after_cap": float(r.get(server, "retry_after_cap", _NUMBER, "server", 60.0)),
        "open_tenant": r.get(server, "open_tenant", str, "server"),
        "workers": r.get(server, "workers", int, "server", 1),
    }
    values = {
        "upstreams": tuple(upstreams),
        "tenants": tuple(tenants),
        "admin_key_hashes": admin_hashes,
        "store_url": store,
        "cache": cache,
        "store_breaker": _read_breaker(r, doc),
        "limits": _read_limits(r, server),
        "quota": quota,
        **fields,
    }
    # The cross-field rules run even when single settings were wrong, so that one run of
    # ``config check`` lists everything; a location already reported is not repeated.
    seen = {p.location for p in r.problems}
    for p in check_settings(SettingsDraft(**values)):
        if f"{source}: {p.location}" not in seen:
            r.problem(p.location, p.message)
    if r.problems:
        return None, r.problems
    return Settings(**values), []


def _read_file(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f), []
    except OSError as exc:
        return None, [Problem(str(path), f"cannot read: {exc.strerror or exc}")]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(str(path), f"not valid TOML: {exc}")]
    except UnicodeDecodeError:
        return None, [Problem(str(path), "not valid UTF-8")]


def check_config(path: str | Path, env: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem in the config file at ``path`` (with env overrides); empty if valid."""
    path = Path(path)
    doc, problems = _read_file(path)
    if doc is None:
        return problems
    return settings_from_document(doc, os.environ if env is None else env, str(path))[1]


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file at ``path``; :class:`ConfigError` lists every problem."""
    path = Path(path)
    doc, problems = _read_file(path)
    if doc is not None:
        settings, problems = settings_from_document(
            doc, os.environ if env is None else env, str(path)
        )
        if settings is not None:
            return settings
    raise ConfigError(problems)
