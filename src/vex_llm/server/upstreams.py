"""Building the upstream providers the settings describe (the one place the proxy reads keys).

An upstream's API key is read from its environment variable here and handed to the provider,
never kept in the settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from vex_llm.pricing import Price, PriceBook
from vex_llm.provider import LLMProvider
from vex_llm.providers.base import AnswerLimits, HTTPProvider
from vex_llm.providers.kinds import build_upstream
from vex_llm.server.settings import UpstreamSettings

__all__ = ["build_provider", "upstream_prices", "upstream_secret"]


def upstream_secret(upstream: UpstreamSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The upstream's API key from its environment variable (None when it has none)."""
    if upstream.api_key_env is None:
        return None
    return (os.environ if env is None else env).get(upstream.api_key_env) or None


def build_provider(
    upstream: UpstreamSettings,
    env: Mapping[str, str] | None = None,
    *,
    answer_limits: AnswerLimits | None = None,
) -> LLMProvider:
    """The provider for ``upstream`` (its kind's class, its key from the environment), reading
    answers within ``answer_limits`` when given."""
    try:
        provider = build_upstream(
            upstream.kind,
            base_url=upstream.base_url,
            model=upstream.model,
            api_key=upstream_secret(upstream, env),
            timeout=upstream.timeout,
        )
    except ValueError as exc:
        raise ValueError(f"upstream {upstream.name!r}: {exc}") from None
    if answer_limits is not None and isinstance(provider, HTTPProvider):
        provider.answer_limits = answer_limits
    return provider


def upstream_prices(
    upstreams: Iterable[UpstreamSettings], book: PriceBook | None = None
) -> dict[str, Price | None]:
    """Each upstream's price (name -> it): its configured ``price``, else what ``book`` says of
    its model at its base URL (0 on loopback, the catalogue's, or None: unknown).

    Called once when the proxy starts: the catalogue's first lookup takes ~0.5 s, which no
    request should wait for.
    """
    book = book or PriceBook()
    return {
        u.name: u.price if u.price is not None else book.price(u.model, u.base_url)
        for u in upstreams
    }
