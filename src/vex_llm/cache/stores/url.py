"""Store URLs: one string picks and configures a cache store (for the CLI, proxy and config).

    memory://                                   in-process (the default store)
    memory://?policy=lru                        option: policy (w-tinylfu, the default, or lru)
    sqlite:///absolute/path/cache.db            a SQLite file (three slashes: absolute path;
                                                four, as SQLAlchemy writes it, work too)
    sqlite:///var/cache/x.db?busy_timeout=10    options: busy_timeout (s), synchronous,
                                                bad_file=fail|move_aside (a corrupt file:
                                                refuse it, or rename it and start empty)
    redis://[user:password@]host[:port][/db]    Redis; rediss:// for TLS
    valkey://... / valkeys://...                the same, spelled for Valkey
    redis://host/0?prefix=team-a:               options: prefix, socket_timeout,
                                                socket_connect_timeout (s), max_connections
                                                (50), pool_timeout (s to wait for one, 1)
    redis+cluster://host:port[,host:port...]    Redis Cluster (the same options, and shards:
                                                hash tags to spread entries over, default 1)
    redis+sentinel://host:26379[,...]/service[/db]  the primary Sentinel names for service
    (rediss+..., valkey+..., valkeys+...: the same; see ``redis_topology``)

Relative SQLite paths are refused: a cache file that moves with the working directory of
whichever process opened it is a surprise, not a feature. Bad URLs raise ``ValueError``
naming the problem; passwords never appear in errors or reprs (see :func:`redact_url`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from vex_llm.cache.stores.base import CacheStore
from vex_llm.redaction import redact_url

__all__ = ["open_store", "redact_url"]

_REDIS_SCHEMES = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}
_REDIS_OPTIONS = {"socket_timeout", "socket_connect_timeout", "pool_timeout"}
_SQLITE_OPTIONS = {"busy_timeout", "synchronous", "bad_file"}


def _options(query: str, allowed: set[str], scheme: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            raise ValueError(
                f"unknown option {name!r} in a {scheme}:// store URL "
                f"(known: {', '.join(sorted(allowed))})"
            )
        options[name] = value
    return options


def _seconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"store URL option {name} must be a number of seconds") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"store URL option {name} must be a finite number >= 0")
    return number


def open_store(
    url: str,
    *,
    max_entries: int | None = None,
    max_bytes: int | None = None,
    ttl: float | None = None,
    tti: float | None = None,
) -> CacheStore:
    """Open the store ``url`` names, with these bounds and lifetimes.

    ``memory://`` with neither bound gets :class:`MemoryStore`'s default bound (1000 entries);
    persistent stores without bounds are unbounded. ``redis``/``valkey`` URLs need the
    ``[redis]`` extra.
    """
    if not isinstance(url, str):
        raise TypeError(f"store URL must be a str, not {type(url).__name__}")
    safe = redact_url(url)
    bounds: dict[str, Any] = {
        "max_entries": max_entries,
        "max_bytes": max_bytes,
        "ttl": ttl,
        "tti": tti,
    }
    from vex_llm.cache.stores.redis_topology import is_topology_url

    if is_topology_url(url.strip()):  # several hosts: not a netloc urlsplit can parse
        return _redis_topology(url.strip(), safe, bounds)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise ValueError(f"malformed store URL {safe}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise ValueError(
            f"store URL {safe} has no scheme; use memory://, sqlite:///path or redis://host"
        )
    if scheme == "memory":
        return _memory(parts, safe, bounds)
    if scheme == "sqlite":
        return _sqlite(parts, safe, bounds)
    if scheme in _REDIS_SCHEMES:
        return _redis(parts, safe, bounds)
    raise ValueError(
        f"unknown store scheme {scheme!r} in {safe}; "
        "use memory://, sqlite:///path, redis://, rediss://, valkey:// or valkeys:// "
        "(redis+cluster:// and redis+sentinel:// too)"
    )


def _memory(parts: SplitResult, safe: str, bounds: dict[str, Any]) -> CacheStore:
    from vex_llm.cache.stores.memory import POLICIES, MemoryStore

    if (parts.netloc + parts.path).strip("/"):
        raise ValueError(f"memory:// takes no path, got {safe}")
    options = _options(parts.query, {"policy"}, "memory")
    policy = options.get("policy", POLICIES[0])
    if policy not in POLICIES:
        raise ValueError(f"store URL option policy must be one of {', '.join(POLICIES)}")
    if bounds["max_entries"] is None and bounds["max_bytes"] is None:
        return MemoryStore(ttl=bounds["ttl"], tti=bounds["tti"], policy=policy)
    return MemoryStore(**bounds, policy=policy)


def _sqlite(parts: SplitResult, safe: str, bounds: dict[str, Any]) -> CacheStore:
    from vex_llm.cache.stores.sqlite import SQLiteStore

    path = parts.path
    if parts.netloc:
        raise ValueError(
            f"sqlite store URL {safe} has a relative path or a host; use three slashes and "
            "an absolute path: sqlite:///absolute/path/cache.db"
        )
    if not path or path == "/" or path.endswith("/"):
        raise ValueError(f"sqlite store URL {safe} names no file: sqlite:///absolute/path.db")
    options = _options(parts.query, _SQLITE_OPTIONS, "sqlite")
    synchronous = options.get("synchronous", "NORMAL").upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError("store URL option synchronous must be NORMAL or FULL")
    bad_file = options.get("bad_file", "fail")
    if bad_file not in ("fail", "move_aside"):
        raise ValueError("store URL option bad_file must be fail or move_aside")
    return SQLiteStore(
        # sqlite:////abs (SQLAlchemy's spelling) means the same file as sqlite:///abs.
        "/" + unquote(path).lstrip("/"),
        **bounds,
        busy_timeout=_seconds("busy_timeout", options.get("busy_timeout", "5")),
        synchronous="FULL" if synchronous == "FULL" else "NORMAL",
        bad_file="move_aside" if bad_file == "move_aside" else "fail",
    )


def _redis(parts: SplitResult, safe: str, bounds: dict[str, Any]) -> CacheStore:
    from vex_llm.cache.stores.redis import RedisStore

    if not parts.hostname:
        raise ValueError(f"redis store URL {safe} names no host: redis://host:port/db")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"redis store URL {safe}: the path must be a database number, not {db!r}")
    options = _options(parts.query, _REDIS_OPTIONS | {"prefix", "max_connections"}, parts.scheme)
    prefix = options.pop("prefix", "vex-llm:")
    for name, value in options.items():
        if name != "max_connections":
            _seconds(name, value)
    if "max_connections" in options and not (
        options["max_connections"].isdigit() and int(options["max_connections"]) > 0
    ):
        raise ValueError("store URL option max_connections must be a positive integer")
    if "pool_timeout" in options:  # redis-py's name for it
        options["timeout"] = options.pop("pool_timeout")
    scheme = _REDIS_SCHEMES[parts.scheme.lower()]
    target = urlunsplit((scheme, parts.netloc, "/" + (db or "0"), urlencode(options), ""))
    return RedisStore(target, prefix=prefix, **bounds)


def _redis_topology(url: str, safe: str, bounds: dict[str, Any]) -> CacheStore:
    from vex_llm.cache.stores.redis import RedisStore
    from vex_llm.cache.stores.redis_topology import parse_target

    try:
        parse_target(url)
    except ValueError as exc:
        raise ValueError(f"bad redis store URL {safe}: {exc}") from None
    base, _, query = url.partition("?")
    scheme = base.split("://", 1)[0]
    options = _options(query, _REDIS_OPTIONS | {"prefix", "max_connections", "shards"}, scheme)
    prefix = options.pop("prefix", "vex-llm:")
    shards = options.pop("shards", "1")
    if not (shards.isdigit() and int(shards) > 0):
        raise ValueError("store URL option shards must be a positive integer")
    for name, value in options.items():
        if name != "max_connections":
            _seconds(name, value)
    if "max_connections" in options and not (
        options["max_connections"].isdigit() and int(options["max_connections"]) > 0
    ):
        raise ValueError("store URL option max_connections must be a positive integer")
    if "pool_timeout" in options:
        options["timeout"] = options.pop("pool_timeout")
    target = base + ("?" + urlencode(options) if options else "")
    return RedisStore(target, prefix=prefix, shards=int(shards), **bounds)
