"""Proxy settings as values: ``Settings``, its upstreams and tenants, and the rules they obey.

Client and admin keys are kept only as SHA-256 digests. Upstream API keys are kept as the
*name* of their environment variable; the value is read only when the provider is built.
Building ``Settings`` checks every cross-field rule and raises :class:`ConfigError` listing
every problem; :mod:`vex_llm.server.config_file` reads them from TOML and the environment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.stores.breaker import StoreBreakerPolicy
from vex_llm.hosts import is_loopback
from vex_llm.pricing import Price
from vex_llm.providers.kinds import KIND_NAMES
from vex_llm.providers.kinds import UPSTREAM_KINDS as UPSTREAM_KIND_TABLE
from vex_llm.quota.policy import TenantQuota
from vex_llm.resilience.policy import BreakerPolicy, RetryPolicy
from vex_llm.server.limits import ServerLimits

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "UPSTREAM_KINDS",
    "ConfigError",
    "Problem",
    "Settings",
    "SettingsDraft",
    "TenantSettings",
    "UpstreamSettings",
    "check_settings",
    "hash_key",
    "is_loopback",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: The upstream kind names (the table is ``vex_llm.providers.kinds.UPSTREAM_KINDS``).
UPSTREAM_KINDS = KIND_NAMES
_STORE_SCHEMES = ("memory://", "sqlite:///", "redis://", "rediss://", "valkey://", "valkeys://")


def hash_key(key: str) -> bytes:
    """The SHA-256 digest under which a client or admin key is kept."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


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

    Resilience: ``retry`` and ``breaker`` (None: off) guard every call to this upstream;
    ``fallbacks`` names the upstreams that answer, in order, when this one fails in a way
    they may not (not transitively: their own fallbacks are not followed);
    ``stale_if_error`` keeps entries that many seconds past their ttl, to answer with when
    the upstream fails (0: off); within ``stale_while_revalidate`` seconds past their ttl,
    entries answer at once while one background call refreshes them (0: off).

    ``price`` (dollars per million tokens) is what this upstream charges; None: the
    ``vex_llm.pricing`` catalogue's price, 0 on a loopback address, else unknown.
    """

    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 60.0
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy | None = field(default_factory=BreakerPolicy)
    fallbacks: tuple[str, ...] = ()
    stale_if_error: float = 0.0
    stale_while_revalidate: float = 0.0
    price: Price | None = None

    @property
    def stale_grace(self) -> float:
        """How long past the ttl this upstream's entries must be kept (either stale mode)."""
        return max(self.stale_if_error, self.stale_while_revalidate)


@dataclass(frozen=True, slots=True)
class TenantSettings:
    """A tenant and the SHA-256 digests of the client keys that identify it.

    ``quota``: its rate limits and budgets (None: ``Settings.quota``, every tenant's default).
    """

    tenant_id: str
    key_hashes: tuple[bytes, ...]
    quota: TenantQuota | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the proxy needs to run; build it with :func:`load_settings` or directly.

    ``open_tenant`` (quick path) maps every client, whatever its key, to one tenant; it is
    refused unless ``host`` is a loopback address. ``store_breaker`` is the circuit breaker
    around a SQLite or Redis store (see ``vex_llm.cache.stores.breaker``). ``quota`` is the
    rate limits and budgets of every tenant without its own (see ``vex_llm.quota``).
    """

    upstreams: tuple[UpstreamSettings, ...]
    tenants: tuple[TenantSettings, ...] = ()
    open_tenant: str | None = None
    admin_key_hashes: tuple[bytes, ...] = ()
    store_url: str = "memory://"
    cache: LLMCacheConfig = field(default_factory=LLMCacheConfig.default)
    store_breaker: StoreBreakerPolicy = field(default_factory=StoreBreakerPolicy)
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    metrics_auth: bool = False
    retry_after_cap: float = 60.0
    limits: ServerLimits = field(default_factory=ServerLimits)
    workers: int = 1
    #: One log line per request (uvicorn's access log). Off by default: at a few hundred
    #: microseconds per cache hit, a line to stderr is a fifth of the hit.
    access_log: bool = False
    quota: TenantQuota = field(default_factory=TenantQuota)

    def __post_init__(self) -> None:
        problems = check_settings(self)
        if problems:
            raise ConfigError(problems)

    def upstream(self, name: str) -> UpstreamSettings | None:
        """The upstream serving model ``name``, or None."""
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        return None


@dataclass(frozen=True, slots=True)
class SettingsDraft:
    """The fields of :class:`Settings`, gathered before they are checked and built."""

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
    store_breaker: StoreBreakerPolicy = field(default_factory=StoreBreakerPolicy)
    limits: ServerLimits = field(default_factory=ServerLimits)
    workers: int = 1
    quota: TenantQuota = field(default_factory=TenantQuota)


def _fallback_problems(u: UpstreamSettings, names: list[str]) -> list[Problem]:
    where = f"upstreams.{u.name}"
    problems = []
    for name in u.fallbacks:
        if name == u.name:
            problems.append(Problem(f"{where}.fallbacks", "an upstream cannot fall back to itself"))
        elif name not in names:
            problems.append(Problem(f"{where}.fallbacks", f"no upstream is named {name!r}"))
    if len(set(u.fallbacks)) != len(u.fallbacks):
        problems.append(Problem(f"{where}.fallbacks", "names an upstream twice"))
    for name in ("stale_if_error", "stale_while_revalidate"):
        value = getattr(u, name)
        if not (value >= 0 and value != float("inf")):
            problems.append(Problem(f"{where}.{name}", "must be seconds >= 0"))
    return problems


def check_settings(s: Settings | SettingsDraft) -> list[Problem]:
    """Every cross-field problem of ``s`` (empty when it is valid)."""
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
        kind = UPSTREAM_KIND_TABLE.get(u.kind)
        if kind is not None and kind.needs_key and u.api_key_env is None:
            problems.append(Problem(f"upstreams.{u.name}.api_key_env", f"{u.kind} needs a key"))
        problems += _fallback_problems(u, names)
    for where, quota in (
        ("quota", s.quota),
        *((f"tenants.{t.tenant_id}", t.quota) for t in s.tenants if t.quota is not None),
    ):
        problems += [Problem(f"{where}.{name}", message) for name, message in quota.problems()]
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
    for name, message in s.limits.problems():
        problems.append(Problem(f"server.{name}", message))
    if s.retry_after_cap <= 0:
        problems.append(Problem("server.retry_after_cap", "must be positive"))
    if s.workers < 1:
        problems.append(Problem("server.workers", "must be at least 1"))
    elif s.workers > 1 and s.store_url.startswith("memory:"):
        problems.append(
            Problem(
                "server.workers",
                f"{s.workers} workers need a shared cache store: with memory:// each worker "
                "would keep its own cache (hits and coalescing not shared across workers); "
                "use sqlite:///ABSOLUTE/PATH (one machine) or redis://HOST",
            )
        )
    return problems
