"""What one answer of the proxy cost and saved, in dollars (pure: no I/O, no state).

An answer that went upstream for its caller (``miss``, ``bypass``) is *spent*; one served
without an upstream call (``hit``, ``coalesced``) is *saved*, at the price the upstream would
have charged for its usage. A ``stale`` answer counts neither: with stale-if-error the call
failed (nothing charged, nothing avoided); with stale-while-revalidate its refresh runs in the
background, outside any request (the cache's own ``CacheStats.dollars_spent`` counts it). An
embeddings answer is both at once: the inputs sent upstream are spent, the ones served from
the cache saved. ``None`` means the answering upstream has no price (see ``vex_llm.pricing``):
the proxy counts such answers as ``unpriced`` instead of pretending they were free.
"""

from __future__ import annotations

from dataclasses import dataclass

from vex_llm.models import Usage
from vex_llm.pricing import Price, cost

__all__ = ["NOTHING", "Dollars", "answer_dollars", "embedding_dollars"]


@dataclass(frozen=True, slots=True)
class Dollars:
    """Dollars one answer cost (``spent``) and avoided (``saved``)."""

    spent: float
    saved: float


#: A priced answer that neither spent nor saved (a stale one).
NOTHING = Dollars(0.0, 0.0)


def answer_dollars(price: Price | None, outcome: str, usage: Usage) -> Dollars | None:
    """The dollars of a chat-like answer served with ``outcome`` (None: no price)."""
    if price is None:
        return None
    if outcome in ("miss", "bypass"):
        return Dollars(cost(price, usage), 0.0)
    if outcome in ("hit", "coalesced"):
        return Dollars(0.0, cost(price, usage))
    return NOTHING


def embedding_dollars(price: Price | None, sent: Usage, tokens_saved: int) -> Dollars | None:
    """The dollars of an embeddings answer: ``sent`` upstream, ``tokens_saved`` from the cache
    (None: no price)."""
    if price is None:
        return None
    return Dollars(cost(price, sent), cost(price, Usage(prompt_tokens=tokens_saved)))
