"""What the cache does with a request: one pure rule for ``complete()`` and ``stream()`` alike.

:func:`decide` maps (the request's cache controls, what the store holds for its key, whether an
identical call is in flight in this process) to one :class:`Decision`; it does no I/O, so it is
tested over every input (``tests/test_decision.py``). ``CachedProvider`` drives it: it reads
the store when :func:`reads_store` says so, asks :func:`decide`, and carries the decision out.

    only_if_cached, nothing fresh   -> only_if_cached_miss   (never calls upstream)
    no_cache                        -> bypass                (its own call; refreshes the entry)
    a fresh entry                   -> hit
    an entry to revalidate          -> hit, and a background call refreshes it (unless one is
                                       in flight already, or only_if_cached)
    an identical call in flight     -> join                  (one upstream call for all)
    otherwise                       -> lead                  (the call others may join)

A leader takes the cross-process lease (``Decision.lease``) unless its answer will not be
stored (``no_store``): other processes could only wait for it in vain. With a ``stale``
entry (past its ttl, within the stale-if-error grace, see ``staleness``) a join or lead
keeps it to answer with if the upstream fails (``Decision.stale_on_error``).

This module and ``outcome`` are leaves: they import nothing else from ``vex_llm.cache``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ACTIONS",
    "BYPASS",
    "BYPASS_NO_STORE",
    "HIT",
    "HIT_REVALIDATE",
    "JOIN",
    "JOIN_STALE",
    "LEAD",
    "LEAD_NO_STORE",
    "LEAD_NO_STORE_STALE",
    "LEAD_STALE",
    "ONLY_IF_CACHED_MISS",
    "Action",
    "Controls",
    "Decision",
    "Stored",
    "decide",
    "reads_store",
]

#: What happens to a request.
Action = Literal["hit", "join", "lead", "bypass", "only_if_cached_miss"]
ACTIONS: tuple[Action, ...] = ("hit", "join", "lead", "bypass", "only_if_cached_miss")

#: What the store holds for the key: a usable entry, one usable now but due for a refresh
#: (stale-while-revalidate), one usable only if the upstream fails, nothing, or "not read"
#: (``no_cache`` requests never read).
Stored = Literal["fresh", "revalidate", "stale", "absent", "unread"]


class Controls(Protocol):
    """The request controls the decision depends on (``CacheControl`` has them)."""

    @property
    def no_cache(self) -> bool: ...

    @property
    def no_store(self) -> bool: ...

    @property
    def only_if_cached(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """``action``; for calls that go upstream, whether the answer is ``store``d, whether
    the cross-process ``lease`` is taken first, and whether the stale entry answers if the
    upstream fails (``stale_on_error``); for a hit, whether a background call refreshes the
    entry (``revalidate``)."""

    action: Action
    store: bool = False
    lease: bool = False
    stale_on_error: bool = False
    revalidate: bool = False


HIT = Decision("hit")
HIT_REVALIDATE = Decision("hit", revalidate=True)
JOIN = Decision("join")
ONLY_IF_CACHED_MISS = Decision("only_if_cached_miss")
LEAD = Decision("lead", store=True, lease=True)
LEAD_NO_STORE = Decision("lead")
BYPASS = Decision("bypass", store=True)
BYPASS_NO_STORE = Decision("bypass")
JOIN_STALE = Decision("join", stale_on_error=True)
LEAD_STALE = Decision("lead", store=True, lease=True, stale_on_error=True)
LEAD_NO_STORE_STALE = Decision("lead", stale_on_error=True)


def reads_store(control: Controls) -> bool:
    """Whether the store must be read before :func:`decide` (not for ``no_cache``)."""
    return not control.no_cache


def decide(control: Controls, stored: Stored, in_flight: bool) -> Decision:
    """The one rule (see the module docstring). Pure and total over its inputs."""
    if stored == "fresh" and not control.no_cache:
        return HIT
    if stored == "revalidate" and not control.no_cache:
        # One refresh at a time; only_if_cached must never cause an upstream call.
        return HIT if in_flight or control.only_if_cached else HIT_REVALIDATE
    if control.only_if_cached:
        # Even with no_cache (a contradiction CacheControl refuses to build): a caller who
        # said "only from the cache" must never cause an upstream call.
        return ONLY_IF_CACHED_MISS
    if control.no_cache:
        # A caller asking for a fresh sample gets its own call, never a shared one.
        return BYPASS_NO_STORE if control.no_store else BYPASS
    if stored == "stale":
        if in_flight:
            return JOIN_STALE
        return LEAD_NO_STORE_STALE if control.no_store else LEAD_STALE
    if in_flight:
        return JOIN
    return LEAD_NO_STORE if control.no_store else LEAD
