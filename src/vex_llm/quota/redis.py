"""``RedisQuota``: limits and budgets shared by every proxy sharing a Redis or Valkey store.

It talks through the cache store's own ``redis.asyncio`` client (``RedisStore.client``: one
connection pool, the same URL, TLS, Sentinel or Cluster set-up), under the store's prefix:
``<prefix>quota:{<tenant digest>}:<tenant>:...``. The digest in braces is the key's hash tag,
so one tenant's keys share a Cluster slot whatever its name holds. Each operation is one
script (``quota.redis_scripts``) run by EVALSHA: one round trip, atomic on the server, timed
by the server's clock. Redis errors become :class:`QuotaStoreError`; the gate then fails open
to in-process counting (``quota.failover``).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from vex_llm.quota.gcra import Verdict
from vex_llm.quota.periods import Periods
from vex_llm.quota.policy import Limits
from vex_llm.quota.redis_scripts import ADMIT, PEEK, SETTLE
from vex_llm.quota.standing import QuotaStoreError, Standing

__all__ = ["RedisQuota"]

_PERIOD_MS = "60000"
#: A spend key outlives its period by a day, so a peek just after the end still finds it.
_SPEND_GRACE = 86_400


def _verdict(reply: list[Any]) -> Verdict | None:
    if not reply:
        return None
    allowed, remaining, reset_ms, retry_ms = (int(x) for x in reply)
    return Verdict(bool(allowed), remaining, reset_ms / 1000, retry_ms / 1000)


def _arg(value: object | None) -> str:
    return "" if value is None else str(value)


class RedisQuota:
    """Limits counted in Redis under ``prefix`` through ``client`` (the caller's: never
    closed here)."""

    def __init__(self, client: Any, prefix: str = "vex-llm:") -> None:
        from redis.asyncio.cluster import RedisCluster

        self._client = client
        self._prefix = prefix + "quota:"
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._peek = client.register_script(PEEK)
        # On a cluster the scripts are loaded on every primary before first use, as the
        # store does: concurrent NOSCRIPT retries made redis-py's cluster client drop
        # connections other commands were using.
        self._unloaded: asyncio.Lock | None = (
            asyncio.Lock() if isinstance(client, RedisCluster) else None
        )
        self._keys: dict[str, str] = {}

    def _base(self, tenant: str) -> str:
        base = self._keys.get(tenant)
        if base is None:
            digest = hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            base = self._keys[tenant] = f"{self._prefix}{{{digest}}}:{tenant}:"
        return base

    def _all_keys(self, tenant: str, periods: Periods) -> list[str]:
        base = self._base(tenant)
        return [
            base + "rpm",
            base + "tpm",
            f"{base}day:{periods.day}",
            f"{base}month:{periods.month}",
        ]

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        from redis.exceptions import RedisClusterException, RedisError

        try:
            if self._unloaded is not None:
                await self._load()
            return await script(keys=keys, args=args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise QuotaStoreError(f"quota script failed: {type(exc).__name__}: {exc}") from exc

    async def _load(self) -> None:
        lock = self._unloaded
        if lock is None:
            return
        async with lock:
            if self._unloaded is None:
                return
            for script in (self._admit, self._settle, self._peek):
                await self._client.script_load(script.script)
            self._unloaded = None

    async def admit(self, tenant: str, limits: Limits, tokens: int, periods: Periods) -> Standing:
        """Take a request and reserve ``tokens``: one script."""
        rate = limits.requests
        args = [
            _PERIOD_MS,
            _arg(None if rate is None else rate.limit),
            _arg(None if limits.tokens is None else limits.tokens.limit),
            str(tokens),
            _arg(limits.daily),
            _arg(limits.monthly),
        ]
        requests, verdict, day, month, reserved = await self._run(
            self._admit, self._all_keys(tenant, periods), args
        )
        return Standing(
            _verdict(requests), _verdict(verdict), int(day), int(month), reserved=bool(reserved)
        )

    async def settle(
        self, tenant: str, limits: Limits, tokens: int, nanos: int, periods: Periods
    ) -> Standing:
        """Correct the tokens and add the spend: one script."""
        keys = self._all_keys(tenant, periods)[1:]
        args = [
            _PERIOD_MS,
            _arg(None if limits.tokens is None else limits.tokens.limit),
            str(tokens),
            str(nanos),
            str(int(periods.day_left) + _SPEND_GRACE),
            str(int(periods.month_left) + _SPEND_GRACE),
        ]
        verdict, day, month = await self._run(self._settle, keys, args)
        return Standing(None, _verdict(verdict), int(day), int(month))

    async def peek(self, tenant: str, limits: Limits, periods: Periods) -> Standing:
        """The tenant's figures: one read-only script."""
        args = [
            _PERIOD_MS,
            _arg(None if limits.requests is None else limits.requests.limit),
            _arg(None if limits.tokens is None else limits.tokens.limit),
        ]
        requests, verdict, day, month = await self._run(
            self._peek, self._all_keys(tenant, periods), args
        )
        return Standing(_verdict(requests), _verdict(verdict), int(day), int(month))
