"""Prices of models and the dollar cost of an answer's usage.

A :class:`Price` is dollars per million prompt and completion tokens; :func:`cost` turns a
:class:`~vex_llm.models.Usage` into dollars (pure arithmetic, cheap enough for the hit path).
A :class:`PriceBook` resolves ``(model, base URL)`` to a price, in this order:

1. an override given to the book (by model name): self-hosted and negotiated prices;
2. price 0 for an upstream on a loopback address (the embedded local model, Ollama on this
   machine): it costs nothing per token;
3. the catalogue of `genai-prices <https://github.com/pydantic/genai-prices>`_ (bundled data,
   no network), where the base URL names the provider; without a base URL the model name
   alone picks one.

Anything else has **no price** (``None``), never a silent 0: a self-hosted upstream on another
host, a gateway the catalogue does not know, a model it does not list. Callers show such
figures as unknown (``null``). A price is resolved once per ``(model, base URL)`` and kept:
the catalogue's first lookup costs ~0.3 s (importing and loading its data), later ones
~0.1-0.5 ms, a kept one a dict read. Catalogue prices are taken as they stand at resolution:
a tier for very long prompts (e.g. above 200k tokens) and time-of-day discounts are not
followed (the base price is used), and cached-input discounts are not applied (``Usage``
does not report cached tokens).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from vex_llm.hosts import is_loopback
from vex_llm.models import Usage

__all__ = ["FREE", "Price", "PriceBook", "catalogue_price", "cost"]

log = logging.getLogger("vex_llm.pricing")

_PER = 1_000_000
#: How many resolved prices a book keeps; past that it resolves again each time (a book
#: asked about client-chosen names must not grow without bound).
_MAX_KEPT = 1024


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens: ``input_per_mtok`` for prompt tokens, ``output_per_mtok``
    for completion tokens. Both finite and >= 0 (``ValueError`` otherwise)."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            # bool is an int: True dollars is a typo, not a price.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of dollars, not {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, not {value!r}")


#: What a self-hosted model on this machine costs per token.
FREE = Price(0.0, 0.0)


def cost(price: Price, usage: Usage) -> float:
    """Dollars that ``usage`` costs at ``price``."""
    return (
        usage.prompt_tokens * price.input_per_mtok + usage.completion_tokens * price.output_per_mtok
    ) / _PER


def _is_loopback_url(base_url: str) -> bool:
    host = urlsplit(base_url).hostname
    return host is not None and is_loopback(host)


def _dollars(value: Any) -> float | None:
    """A catalogue price as a float: a ``Decimal``, or a tiered price's base; None if absent."""
    if value is None:
        return None
    base = getattr(value, "base", value)  # TieredPrices: the price below the first tier
    return float(base) if isinstance(base, Decimal) else None


def catalogue_price(model: str, base_url: str | None = None) -> Price | None:
    """The catalogue's (genai-prices) price of ``model`` at the provider ``base_url`` names
    (None: any provider listing the model); None when the catalogue does not know either, or
    prices the model by something other than tokens.

    ``ImportError`` naming the package when genai-prices is not installed (it comes with
    ``vex-llm[server]``).
    """
    try:
        import genai_prices
    except ImportError as exc:
        raise ImportError(
            "prices from the catalogue need genai-prices: pip install genai-prices "
            "(included in 'vex-llm[server]'), or give prices explicitly"
        ) from exc
    try:
        found = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=0, output_tokens=0),
            model,
            provider_api_url=base_url,
        )
    except LookupError:
        return None
    prices = found.model_price
    input_price = _dollars(prices.input_mtok)
    output_price = _dollars(prices.output_mtok)
    if input_price is None:
        return None
    # Embedding models have no output price: their answers have no completion tokens.
    return Price(input_price, output_price or 0.0)


class PriceBook:
    """Resolves ``(model, base URL)`` to a :class:`Price` or None (see the module docstring
    for the order: overrides, loopback, catalogue), once per pair.

    ``overrides`` maps model names to prices and beats everything else. ``catalogue=False``
    leaves the catalogue out (no genai-prices needed): unknown models then have no price.
    """

    def __init__(
        self, overrides: Mapping[str, Price] | None = None, *, catalogue: bool = True
    ) -> None:
        self._overrides = dict(overrides or {})
        self._catalogue = catalogue
        self._kept: dict[tuple[str, str | None], Price | None] = {}

    def price(self, model: str, base_url: str | None = None) -> Price | None:
        """The price of ``model`` served from ``base_url`` (None: unknown)."""
        key = (model, base_url)
        try:
            return self._kept[key]
        except KeyError:
            pass
        found = self._resolve(model, base_url)
        if len(self._kept) < _MAX_KEPT:
            self._kept[key] = found
        return found

    def _resolve(self, model: str, base_url: str | None) -> Price | None:
        override = self._overrides.get(model)
        if override is not None:
            return override
        if base_url is not None and _is_loopback_url(base_url):
            return FREE
        if not self._catalogue:
            return None
        found = catalogue_price(model, base_url)
        if found is None:
            where = base_url or "any provider"
            log.info("no price known for model %r at %s: its dollars are not counted", model, where)
        return found
