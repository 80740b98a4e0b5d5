"""``QuotaGate``: the proxy's one entrance for rate limits and budgets, and its ``Ticket``.

Every request of a tenant with a quota goes through it, whatever door it came in by:

1. ``admit`` takes one request from the requests-per-minute limit; over it, the ticket holds
   a refusal (429, ``Retry-After``) and nothing else happens. Cache hits count here: a hit is
   a request.
2. The same call reserves the tokens the request may use (``quota.estimate``) from the
   tokens-per-minute limit, unless a daily or monthly budget is spent. When the tokens do
   not fit or a budget is spent, the upstream is closed to this request, not the cache: the
   ticket's ``request`` asks for ``only-if-cached``, so a cached answer is still served and a
   miss becomes the 429 (``rate_limit_exceeded`` for tokens, ``insufficient_quota`` for a
   budget). A ``no-cache`` request, which needs the upstream, is refused at once.
3. ``settle`` after the answer corrects the reservation with the usage the upstream
   reported (a hit, a joined call or a failure gives it all back: the cache is how a tenant
   stays under its token limit) and adds the answer's price to the budgets. A stream settles
   when it ends.

Reserve-then-settle keeps concurrent misses from overshooting the token limit by more than
their estimates; budgets are checked before a call and charged after, so calls already in
flight when a budget runs out still finish (and are charged). Tenants without a quota get an
open ticket: nothing is counted and no header is added.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from vex_llm.embeddings import EmbeddingRequest
from vex_llm.errors import CacheMiss, LLMError
from vex_llm.models import LLMRequest, Usage
from vex_llm.quota.estimate import broken_off_usage, estimate_tokens
from vex_llm.quota.gcra import Rate, Verdict, refunded
from vex_llm.quota.headers import (
    HeaderStyle,
    anthropic_ratelimit_headers,
    go_duration,
    ratelimit_headers,
    retry_after,
    retry_after_seconds,
)
from vex_llm.quota.local import LocalQuota
from vex_llm.quota.periods import Periods, periods_at
from vex_llm.quota.policy import NANOS_PER_USD, Limits, TenantQuota, nanos
from vex_llm.quota.standing import QuotaBackend, Standing

__all__ = ["UPSTREAM_OUTCOMES", "Pricer", "QuotaGate", "Refusal", "Ticket", "no_quota_figures"]

#: Cache outcomes that called the upstream (and so used tokens and money).
UPSTREAM_OUTCOMES = frozenset({"miss", "bypass", "partial"})

#: Rate-limit headers of either style, as an upstream may send them: the tenant's replace them.
_RATELIMIT_HEADERS = ("x-ratelimit-", "anthropic-ratelimit-")

#: The price in dollars of one upstream answer: (upstream name, its usage) -> USD.
Pricer = Callable[[str, Usage], float]

R = TypeVar("R", LLMRequest, EmbeddingRequest)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A 429 to answer with: message, OpenAI's error ``type`` and ``code``, and headers
    (``Retry-After`` and the ``x-ratelimit-*`` ones)."""

    message: str
    type: str
    code: str
    headers: Mapping[str, str]
    reason: str  # requests, tokens, daily_budget, monthly_budget (metrics)


def _usd(amount: int) -> str:
    return f"${amount / NANOS_PER_USD:,.2f}"


class Ticket:
    """One request's passage through the gate (see the module docstring)."""

    __slots__ = (
        "_body_bytes",
        "_budget",
        "_estimate",
        "_forced",
        "_gate",
        "_limits",
        "_periods",
        "_requests",
        "_settled",
        "_standing",
        "_style",
        "_tenant",
        "_tokens",
        "refusal",
        "request",
    )

    def __init__(
        self,
        request: Any,
        gate: QuotaGate | None = None,
        tenant: str = "",
        limits: Limits | None = None,
        periods: Periods | None = None,
        standing: Standing | None = None,
        estimate: int = 0,
        body_bytes: int = 0,
        style: HeaderStyle = "openai",
    ) -> None:
        #: The request to look up: the one given, or its only-if-cached version.
        self.request = request
        #: Set when the request must be refused now (without a lookup).
        self.refusal: Refusal | None = None
        self._gate = gate
        self._tenant = tenant
        self._limits = limits
        self._periods = periods
        self._standing = standing
        self._requests = None if standing is None else standing.requests
        self._tokens = None if standing is None else standing.tokens
        self._estimate = estimate
        self._style = style
        self._body_bytes = body_bytes
        self._forced = False  # only-if-cached was the gate's idea, not the client's
        self._budget: str | None = None
        self._settled = False
        if limits is not None and standing is not None:
            self._decide(limits, standing)

    def _decide(self, limits: Limits, standing: Standing) -> None:
        """Refuse now, close the upstream (only-if-cached), or let the request through."""
        if standing.requests is not None and not standing.requests.allowed:
            self.refusal = self._too_many_requests(standing.requests)
            return
        control = self.request.cache
        if control.only_if_cached:
            return  # the upstream is out of the question anyway
        self._budget = limits.over_budget(standing.daily_spent, standing.monthly_spent)
        tokens_short = limits.tokens is not None and not standing.reserved
        if self._budget is None and not tokens_short:
            return
        self._forced = True
        if control.no_cache:  # needs the upstream, which is closed to it
            self.refusal = self._closed_upstream()
        else:
            self.request = _only_if_cached(self.request)

    def headers(self) -> dict[str, str]:
        """The rate-limit headers of the tenant's limits (none without any), in the style
        of the door the request came in by: ``x-ratelimit-*`` or ``anthropic-ratelimit-*``."""
        limits = self._limits
        if limits is None:
            return {}
        requests = _part(limits.requests, self._requests)
        tokens = _part(limits.tokens, self._tokens)
        if self._style == "anthropic" and self._gate is not None:
            return anthropic_ratelimit_headers(requests, tokens, self._gate.now())
        return ratelimit_headers(requests, tokens)

    def apply(self, headers: dict[str, str]) -> None:
        """Put this ticket's ``x-ratelimit-*`` headers in ``headers``, replacing any the
        upstream sent (its limits are the proxy's account, shared by every tenant)."""
        limits = self._limits
        if limits is None or (limits.requests is None and limits.tokens is None):
            return
        for name in [n for n in headers if n.lower().startswith(_RATELIMIT_HEADERS)]:
            del headers[name]
        headers.update(self.headers())

    async def settle(self, outcome: str, usage: Usage | None, upstream: str) -> None:
        """Settle after the answer: ``outcome`` is how the cache served it, ``usage`` what the
        upstream reported (None: not known, e.g. a stream that broke off: the reservation
        stands), ``upstream`` the name of the upstream that answered. Once per ticket."""
        limits, gate = self._limits, self._gate
        if limits is None or gate is None or self._settled:
            return
        self._settled = True
        called = outcome in UPSTREAM_OUTCOMES
        reserved = self._estimate if self._standing is not None and self._standing.reserved else 0
        delta = 0
        if limits.tokens is not None:
            if not called:
                delta = -reserved
            elif usage is not None:
                delta = usage.total_tokens - reserved
        spent = 0
        if called and usage is not None and limits.has_budget:
            spent = gate.nanos_for(upstream, usage)
        if delta == 0 and spent == 0:
            return
        assert self._periods is not None
        standing = await gate.backend.settle(self._tenant, limits, delta, spent, self._periods)
        if standing.tokens is not None:
            self._tokens = standing.tokens

    async def broke_off(self, upstream: str, text_chars: int) -> Usage:
        """Settle an upstream stream that ended without its usage (the client left, or the
        upstream failed mid-way) after producing ``text_chars`` characters; return the usage
        it is charged (``estimate.broken_off_usage``: the call was made and is billed).
        Without this, a client reading a stream and leaving before its last event would get
        the answer charged to no budget. Settles nothing once the ticket is settled."""
        usage = broken_off_usage(self._body_bytes, text_chars)
        await self.settle("miss", usage, upstream)
        return usage

    def give_back_later(self, outcome: str) -> Callable[[], Awaitable[None]] | None:
        """For an answer that made no upstream call (a hit, a joined call): settle it now in
        this ticket, so its headers already show the reserved tokens given back, and return
        the call that gives them back to the counter, to be made once the answer has left (a
        shared counter is a round trip the client need not wait for). None when there is
        nothing to give back, or the answer called the upstream (``settle`` it instead)."""
        limits, gate, periods = self._limits, self._gate, self._periods
        standing = self._standing
        if (
            limits is None
            or limits.tokens is None
            or gate is None
            or periods is None
            or standing is None
            or not standing.reserved
            or self._settled
            or outcome in UPSTREAM_OUTCOMES
            or not self._estimate
        ):
            return None
        self._settled = True
        reserved, tenant = self._estimate, self._tenant
        if self._tokens is not None:
            self._tokens = refunded(limits.tokens, self._tokens, reserved)
        backend = gate.backend

        async def give_back() -> None:
            await backend.settle(tenant, limits, -reserved, 0, periods)

        return give_back

    async def failed(self, exc: LLMError) -> Refusal | None:
        """The lookup failed with ``exc``: give the reservation back; when ``exc`` is the miss
        of an only-if-cached lookup the gate imposed, the refusal to answer with instead."""
        await self.settle("error", None, "")
        if self._forced and isinstance(exc, CacheMiss):
            return self._closed_upstream()
        return None

    def _too_many_requests(self, verdict: Verdict) -> Refusal:
        gate, limits = self._gate, self._limits
        assert gate is not None
        assert limits is not None
        assert limits.requests is not None
        gate.refused[(self._tenant, "requests")] += 1
        headers = self.headers()
        headers.update(retry_after(verdict.retry_after))
        return Refusal(
            f"Rate limit reached for requests per minute (RPM): Limit {limits.requests.limit}, "
            f"Remaining 0. Please try again in {go_duration(verdict.retry_after)}.",
            "requests",
            "rate_limit_exceeded",
            headers,
            "requests",
        )

    def _closed_upstream(self) -> Refusal:
        """The 429 for a request that needed the upstream when it was closed to it."""
        gate, limits = self._gate, self._limits
        assert gate is not None
        assert limits is not None
        gate.refused[(self._tenant, f"{self._budget}_budget" if self._budget else "tokens")] += 1
        headers = self.headers()
        if self._budget is not None and self._periods is not None:
            daily = self._budget == "daily"
            limit = limits.daily if daily else limits.monthly
            standing = self._standing
            spent = (
                0
                if standing is None
                else (standing.daily_spent if daily else standing.monthly_spent)
            )
            left = self._periods.day_left if daily else self._periods.month_left
            headers["retry-after"] = retry_after_seconds(left)
            # A spent budget comes back only with the next period, hours or days away. The
            # OpenAI and Anthropic SDKs retry every 429, and Anthropic's sleeps for the whole
            # Retry-After first: a client would hang until midnight. This header (which both
            # SDKs obey) makes them give up at once and show the error.
            headers["x-should-retry"] = "false"
            return Refusal(
                f"You exceeded your current quota: the {self._budget} budget of "
                f"{_usd(limit or 0)} is spent ({_usd(spent)}). Answers already in the cache "
                f"are still served; upstream calls resume in {go_duration(left)} "
                f"(at 00:00 UTC{'' if daily else ' on the first of the month'}).",
                "insufficient_quota",
                "insufficient_quota",
                headers,
                f"{self._budget}_budget",
            )
        tokens = self._tokens
        wait = tokens.retry_after if tokens is not None else 1.0
        headers.update(retry_after(wait))
        rate = limits.tokens
        return Refusal(
            f"Rate limit reached for tokens per minute (TPM): Limit {rate.limit if rate else 0}, "
            f"Remaining {tokens.remaining if tokens else 0}, Requested ~{self._estimate} "
            f"(estimated). Answers already in the cache are still served; please try again "
            f"in {go_duration(wait)}.",
            "tokens",
            "rate_limit_exceeded",
            headers,
            "tokens",
        )


def no_quota_figures() -> dict[str, Any]:
    """The ``/v1/cache/stats`` quota figures of a tenant without any quota: all null."""
    return {
        "limits": {"requests": None, "tokens": None},
        "budget": {"daily": None, "monthly": None},
    }


def _part(rate: Rate | None, verdict: Verdict | None) -> tuple[Rate, Verdict] | None:
    return None if rate is None or verdict is None else (rate, verdict)


def _only_if_cached(request: R) -> R:
    return dataclasses.replace(
        request, cache=dataclasses.replace(request.cache, only_if_cached=True)
    )


class QuotaGate:
    """Rate limits and budgets per tenant: ``quotas`` (tenant -> its quota; others get
    ``default``) counted by ``backend`` (None: in this process); ``price`` gives an
    answer's dollars (budgets need it); ``clock`` is wall-clock seconds, for the UTC day
    and month of a spend."""

    def __init__(
        self,
        backend: QuotaBackend | None,
        quotas: Mapping[str, TenantQuota] | None = None,
        default: TenantQuota | None = None,
        *,
        price: Pricer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend: QuotaBackend = backend or LocalQuota()
        self._limits = {t: q.limits() for t, q in (quotas or {}).items() if q.limited}
        default = default or TenantQuota()
        self._default = default.limits() if default.limited else None
        self._quotas = dict(quotas or {})
        self._price = price
        self._clock = clock
        #: Requests refused, by (tenant, reason): requests, tokens, daily/monthly_budget.
        self.refused: Counter[tuple[str, str]] = Counter()

    def limits(self, tenant: str) -> Limits | None:
        """The limits ``tenant`` is counted against, or None when it has none."""
        if tenant in self._quotas:
            return self._limits.get(tenant)
        return self._default

    def nanos_for(self, upstream: str, usage: Usage) -> int:
        """What an answer of ``upstream`` with ``usage`` cost, in nanodollars (0 unpriced)."""
        if self._price is None:
            return 0
        return nanos(max(0.0, self._price(upstream, usage)))

    def now(self) -> float:
        """The gate's wall clock (epoch seconds): budget periods and Anthropic's reset times."""
        return self._clock()

    async def admit(
        self, tenant: str, body_bytes: int, request: R, style: HeaderStyle = "openai"
    ) -> Ticket:
        """The ticket of ``request`` (``body_bytes`` long) from ``tenant``; ``style`` is whose
        rate-limit headers its answers carry (the door's)."""
        limits = self.limits(tenant)
        if limits is None:
            return Ticket(request, body_bytes=body_bytes)
        estimate = 0
        if limits.tokens is not None and not request.cache.only_if_cached:
            max_tokens = request.max_tokens if isinstance(request, LLMRequest) else None
            extra = request.extra.value if max_tokens is None and request.extra else None
            estimate = estimate_tokens(body_bytes, max_tokens, extra)
        periods = periods_at(self._clock())
        standing = await self.backend.admit(tenant, limits, estimate, periods)
        return Ticket(request, self, tenant, limits, periods, standing, estimate, body_bytes, style)

    @property
    def limited(self) -> bool:
        """True when any tenant has a quota."""
        return bool(self._limits) or self._default is not None

    async def aclose(self) -> None:
        """Stop the backend's background work (it closes no store: the store's owner does)."""
        closer = getattr(self.backend, "aclose", None)
        if closer is not None:
            await closer()

    async def figures(self, tenant: str) -> dict[str, Any]:
        """``{"limits": {"requests", "tokens"}, "budget": {"daily", "monthly"}}`` for
        ``/v1/cache/stats``; None for each part not configured."""
        limits = self.limits(tenant)
        figures = no_quota_figures()
        if limits is None:
            return figures
        standing = await self.backend.peek(tenant, limits, periods_at(self._clock()))
        for name, rate, verdict in (
            ("requests", limits.requests, standing.requests),
            ("tokens", limits.tokens, standing.tokens),
        ):
            if rate is not None and verdict is not None:
                figures["limits"][name] = {
                    "limit": rate.limit,
                    "remaining": verdict.remaining,
                    "reset_seconds": round(verdict.reset, 3),
                }
        for name, limit, spent in (
            ("daily", limits.daily, standing.daily_spent),
            ("monthly", limits.monthly, standing.monthly_spent),
        ):
            if limit is not None:
                figures["budget"][name] = {
                    "limit_usd": limit / NANOS_PER_USD,
                    "spent_usd": spent / NANOS_PER_USD,
                }
        return figures
