"""Where a ``RedisStore`` connects: one server, a Redis Cluster, or the primary Sentinel names.

    redis+cluster://[user:password@]host:port[,host:port...][?options]
        Redis Cluster; the nodes listed are where discovery starts (one is enough).
    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?options]
        The current primary of ``service``, as the listed Sentinels report it (and follow
        it through a failover). The password is the data nodes'; Sentinels are asked
        without one.
    rediss+cluster:// and rediss+sentinel:// use TLS; valkey(s)+... are the same spellings.

:func:`parse_target` is pure (tested without a server); :func:`connect` makes the
``redis.asyncio`` client. Plain ``redis://`` URLs are left to redis-py's own parser.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal
from urllib.parse import unquote

__all__ = ["RedisTarget", "connect", "is_topology_url", "parse_target"]

Topology = Literal["cluster", "sentinel"]

_SCHEMES = {"redis": False, "rediss": True, "valkey": False, "valkeys": True}
_DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """A parsed ``redis+cluster://`` or ``redis+sentinel://`` URL (query options excluded)."""

    topology: Topology
    nodes: tuple[tuple[str, int], ...]
    tls: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    service: str | None = None
    db: int = 0


def is_topology_url(url: str) -> bool:
    """True for ``redis+cluster://``, ``redis+sentinel://`` and their spellings."""
    scheme = url.split("://", 1)[0].lower()
    base, plus, topology = scheme.partition("+")
    return bool(plus) and base in _SCHEMES and topology in _DEFAULT_PORTS


def parse_target(url: str) -> RedisTarget:
    """The target of a cluster or sentinel URL; ``ValueError`` naming what is wrong.

    The query string (store options) is ignored here. Error messages never contain the
    password.
    """
    scheme, sep, rest = url.partition("://")
    base, _, topology = scheme.lower().partition("+")
    if not sep or base not in _SCHEMES or topology not in _DEFAULT_PORTS:
        raise ValueError("not a redis+cluster:// or redis+sentinel:// URL")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(part, _DEFAULT_PORTS[topology]) for part in hosts.split(",") if part)
    if not nodes:
        raise ValueError(f"{scheme}:// URL names no host: {scheme}://host:port[,host:port]")
    segments = [unquote(s) for s in path.split("/") if s]
    service = None
    db = 0
    if topology == "sentinel":
        if not segments:
            raise ValueError(
                f"{scheme}:// URL names no service: {scheme}://host:26379/SERVICE[/db]"
            )
        service, segments = segments[0], segments[1:]
    if segments:
        if len(segments) > 1 or not segments[0].isdigit():
            raise ValueError(f"{scheme}:// URL: the path after the hosts must be a db number")
        db = int(segments[0])
    if topology == "cluster" and db != 0:
        raise ValueError("Redis Cluster has only database 0")
    kind: Topology = "cluster" if topology == "cluster" else "sentinel"
    return RedisTarget(kind, nodes, _SCHEMES[base], username, password, service, db)


def _node(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"bad host in a redis URL: {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in a redis URL: {text!r}")
    return host, int(port_text)


def connect(target: RedisTarget, **options: Any) -> tuple[Any, list[Any]]:
    """``(client, helpers)`` for ``target``: the ``redis.asyncio`` client, and the clients it
    uses on the side (Sentinel's), to close with it. ``options`` are connection keyword
    arguments (``socket_timeout``, ``socket_connect_timeout``, ``retry``...)."""
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.topology == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in target.nodes]
        return RedisCluster(startup_nodes=nodes, ssl=target.tls, **auth, **options), []
    from redis.asyncio.sentinel import Sentinel

    sentinel_options: dict[str, Any] = {
        name: value
        for name, value in options.items()
        if name in ("socket_timeout", "socket_connect_timeout")
    }
    if target.tls:
        sentinel_options["ssl"] = True
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    assert target.service is not None
    extra: dict[str, Any] = {"ssl": True} if target.tls else {}
    client = sentinel.master_for(target.service, db=target.db, **auth, **extra, **options)
    return client, list(sentinel.sentinels)
