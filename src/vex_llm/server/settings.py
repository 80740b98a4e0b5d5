"""Proxy settings: one TOML file plus environment overrides, read into a ``Settings`` value.

Reading collects *every* problem with its location (``file.toml: upstreams.gpt.kind``)
instead of stopping at the first, so ``vex-llm config check`` can list them all. Client and
admin keys are kept only as SHA-256 digests: a hex digest written in the file, or the value of
a named environment variable, hashed at load. Upstream API keys are kept as the *name* of
their environment variable; the value is read only when the provider is built.

The file::

    [server]                # all optional
    host = "127.0.0.1"
    port = 8080
    max_body_bytes = 8388608
    metrics_auth = false    # true: /metrics needs the admin key
    retry_after_cap = 60    # seconds; an upstream's longer Retry-After is cut to this
    open_tenant = "local"   # any client key maps to this tenant (loopback hosts only)

    [cache]
    store = "sqlite:////var/cache/vex-llm/cache.db"   # memory:// | sqlite:///... | redis://...
    preset = "default"      # default | aggressive | conservative; fields below override it
    max_entries = 1000
    max_bytes = 67108864
    ttl = 3600              # seconds, or false for none
    tti = 1800

    [admin]
    key_env = "VEX_LLM_ADMIN_KEY"   # and/or key_sha256 = ["<hex>", ...]

    [upstreams."gpt-4o-mini"]       # the model name clients ask for
    kind = "openai"                 # openai | ollama | anthropic
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    model = "gpt-4o-mini"           # the name sent upstream (default: the table's name)
    timeout = 60

    [tenants.acme]
    key_sha256 = ["<hex sha256 of the client key>"]
    key_env = "ACME_KEY"

Environment overrides (the server reads them; library code never does): ``VEX_LLM_HOST``,
``VEX_LLM_PORT``, ``VEX_LLM_STORE``, ``VEX_LLM_MAX_BODY_BYTES``, ``VEX_LLM_METRICS_AUTH``,
``VEX_LLM_RETRY_AFTER_CAP`` and ``VEX_LLM_ADMIN_KEY`` (a raw admin key, hashed at load).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vex_llm.cache.config import LLMCacheConfig

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "UPSTREAM_KINDS",
    "ConfigError",
    "Problem",
    "Settings",
    "TenantSettings",
    "UpstreamSettings",
    "check_config",
    "hash_key",
    "is_loopback",
    "load_settings",
    "settings_from_document",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
UPSTREAM_KINDS = ("openai", "ollama", "anthropic")
_PRESETS: Mapping[str, Callable[[], LLMCacheConfig]] = {
    "default": LLMCacheConfig.default,
    "aggressive": LLMCacheConfig.aggressive,
    "conservative": LLMCacheConfig.conservative,
}
_STORE_SCHEMES = ("memory://", "sqlite:///", "redis://", "rediss://", "valkey://", "valkeys://")


def hash_key(key: str) -> bytes:
    """The SHA-256 digest under which a client or admin key is kept."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem and where it is (file and dotted TOML path, or env var)."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ConfigError(ValueError):
    """The configuration has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """One upstream, served to clients under the model name ``name``.

    ``model`` is the name sent upstream; ``api_key_env`` names the environment variable that
    holds its API key (None: no key). The key itself is never stored here.
    """

    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """A tenant and the SHA-256 digests of the client keys that identify it."""

    tenant_id: str
    key_hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the proxy needs to run; build it with :func:`load_settings` or directly.

    ``open_tenant`` (quick path) maps every client, whatever its key, to one tenant; it is
    refused unless ``host`` is a loopback address.
    """

    upstreams: tuple[UpstreamSettings, ...]
    tenants: tuple[TenantSettings, ...] = ()
    open_tenant: str | None = None
    admin_key_hashes: tuple[bytes, ...] = ()
    store_url: str = "memory://"
    cache: LLMCacheConfig = field(default_factory=LLMCacheConfig.default)
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    metrics_auth: bool = False
    retry_after_cap: float = 60.0

    def __post_init__(self) -> None:
        problems = _check_settings(self)
        if problems:
            raise ConfigError(problems)

    def upstream(self, name: str) -> UpstreamSettings | None:
        """The upstream serving model ``name``, or None."""
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        return None


@dataclass(frozen=True, slots=True)
class _Unchecked:
    """The fields of :class:`Settings`, for checking them before building it."""

    upstreams: tuple[UpstreamSettings, ...]
    tenants: tuple[TenantSettings, ...]
    open_tenant: str | None
    admin_key_hashes: tuple[bytes, ...]
    store_url: str
    cache: LLMCacheConfig
    host: str
    port: int
    max_body_bytes: int
    metrics_auth: bool
    retry_after_cap: float


def _check_settings(s: Settings | _Unchecked) -> list[Problem]:
    problems: list[Problem] = []
    if not s.upstreams:
        problems.append(Problem("upstreams", "at least one upstream is needed"))
    names = [u.name for u in s.upstreams]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(f"upstreams.{name}", "model name is used twice"))
    for u in s.upstreams:
        if u.kind not in UPSTREAM_KINDS:
            problems.append(
                Problem(f"upstreams.{u.name}.kind", f"must be one of {list(UPSTREAM_KINDS)}")
            )
        if not u.base_url.startswith(("http://", "https://")):
            problems.append(Problem(f"upstreams.{u.name}.base_url", "must be an http(s) URL"))
        if u.kind == "anthropic" and u.api_key_env is None:
            problems.append(Problem(f"upstreams.{u.name}.api_key_env", "anthropic needs a key"))
    if not s.tenants and s.open_tenant is None:
        problems.append(
            Problem("tenants", "no tenant has a key; add [tenants.NAME] or set server.open_tenant")
        )
    if s.open_tenant is not None and not is_loopback(s.host):
        problems.append(
            Problem(
                "server.open_tenant",
                f"open access (any client key) is only allowed on a loopback host, not {s.host!r}",
            )
        )
    if not s.store_url.startswith(_STORE_SCHEMES):
        problems.append(
            Problem(
                "cache.store", "must be memory://, sqlite:///ABSOLUTE/PATH, redis:// or valkey://"
            )
        )
    if not 0 <= s.port <= 65535:
        problems.append(Problem("server.port", "must be between 0 and 65535"))
    if s.max_body_bytes < 1:
        problems.append(Problem("server.max_body_bytes", "must be positive"))
    if s.retry_after_cap <= 0:
        problems.append(Problem("server.retry_after_cap", "must be positive"))
    return problems


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
    r.unknown(cache, {"store", "preset", "max_entries", "max_bytes", "ttl", "tti"}, "cache")
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


def _read_upstreams(r: _Reader, doc: Mapping[str, Any]) -> list[UpstreamSettings]:
    upstreams: list[UpstreamSettings] = []
    known = {"kind", "base_url", "model", "api_key_env", "timeout"}
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
        upstreams.append(
            UpstreamSettings(
                name=name,
                kind=kind,
                base_url=base_url or "",
                model=r.get(table, "model", str, where, name),
                api_key_env=r.get(table, "api_key_env", str, where),
                timeout=float(timeout),
            )
        )
    if not upstreams:
        r.problem("upstreams", "at least one [upstreams.MODEL] table is needed")
    return upstreams


def _read_tenants(
    r: _Reader, doc: Mapping[str, Any], env: Mapping[str, str]
) -> list[TenantSettings]:
    tenants = []
    for tenant_id, table in r.table(doc, "tenants", "tenants").items():
        where = f"tenants.{tenant_id}"
        if not isinstance(table, dict):
            r.problem(where, "must be a table")
            continue
        r.unknown(table, {"key_sha256", "key_env"}, where)
        hashes = r.key_hashes(table, where, env)
        if not hashes and not any(p.location.endswith(where + ".key_env") for p in r.problems):
            r.problem(where, "needs key_sha256 or key_env")
        tenants.append(TenantSettings(tenant_id, hashes))
    return tenants


# env var -> (section, setting, parser)
_ENV: Mapping[str, tuple[str, str, Callable[[str], Any]]] = {
    "VEX_LLM_HOST": ("server", "host", str),
    "VEX_LLM_PORT": ("server", "port", int),
    "VEX_LLM_MAX_BODY_BYTES": ("server", "max_body_bytes", int),
    "VEX_LLM_RETRY_AFTER_CAP": ("server", "retry_after_cap", float),
    "VEX_LLM_METRICS_AUTH": ("server", "metrics_auth", lambda v: _parse_bool(v)),
    "VEX_LLM_STORE": ("cache", "store", str),
}


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
    r.unknown(doc, {"server", "cache", "admin", "upstreams", "tenants"}, "")
    server = r.table(doc, "server", "server")
    r.unknown(
        server,
        {"host", "port", "max_body_bytes", "metrics_auth", "retry_after_cap", "open_tenant"},
        "server",
    )
    store, cache = _read_cache(r, doc)
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
    tenants = _read_tenants(r, doc, env)
    fields = {
        "host": r.get(server, "host", str, "server", "127.0.0.1"),
        "port": r.get(server, "port", int, "server", 8080),
        "max_body_bytes": r.get(server, "max_body_bytes", int, "server", DEFAULT_MAX_BODY_BYTES),
        "metrics_auth": r.get(server, "metrics_auth", bool, "server", False),
        "retry_after_cap": float(r.get(server, "retry_after_cap", _NUMBER, "server", 60.0)),
        "open_tenant": r.get(server, "open_tenant", str, "server"),
    }
    values = {
        "upstreams": tuple(upstreams),
        "tenants": tuple(tenants),
        "admin_key_hashes": admin_hashes,
        "store_url": store,
        "cache": cache,
        **fields,
    }
    # The cross-field rules run even when single settings were wrong, so that one run of
    # ``config check`` lists everything; a location already reported is not repeated.
    seen = {p.location for p in r.problems}
    for p in _check_settings(_Unchecked(**values)):
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
