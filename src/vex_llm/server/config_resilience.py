"""Reading an upstream's resilience settings from its TOML table. Pure: no I/O.

::

    [upstreams."gpt-4o-mini"]
    fallbacks = ["local"]       # answer from these, in order, when this upstream fails
    stale_if_error = 86400      # seconds past ttl a stored answer may stand in (0: off)
    stale_while_revalidate = 60 # seconds past ttl it answers at once while refreshed (0: off)

    [upstreams."gpt-4o-mini".retry]     # or: retry = false
    max_attempts = 3
    base_delay = 0.1            # full-jitter exponential backoff, capped at max_delay
    max_delay = 5
    on_rate_limited = true      # 429 (its Retry-After is honoured)
    on_server_error = true      # 5xx
    on_connection = true
    on_timeout = false
    max_retry_after = 30        # a longer Retry-After is returned to the client at once
    budget_ratio = 0.2          # retries add at most 20% to the recent requests...
    budget_min_per_second = 1   # ...plus this many per second

    [upstreams."gpt-4o-mini".breaker]   # or: breaker = false
    failure_rate = 0.5          # opens when this share of calls fails...
    min_calls = 20              # ...once at least this many were made in the window
    window = 30
    open_for = 10               # then fails fast this long before one probe
    max_open_for = 120
    count_rate_limited = false

Every field is optional; an absent table means the defaults (retries and breaker on).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from vex_llm.resilience.policy import BreakerPolicy, RetryPolicy
from vex_llm.validation import is_number as _number

__all__ = ["RESILIENCE_SETTINGS", "read_resilience"]

#: The keys of an upstream table this module reads.
RESILIENCE_SETTINGS = frozenset(
    {"retry", "breaker", "fallbacks", "stale_if_error", "stale_while_revalidate"}
)

Problems = list[tuple[str, str]]


def _policy(
    cls: type[RetryPolicy] | type[BreakerPolicy], value: object, where: str, problems: Problems
) -> RetryPolicy | BreakerPolicy | None:
    if value is False:
        return None
    if value is True:
        return cls()
    if not isinstance(value, dict):
        problems.append((where, "must be a table, or true/false"))
        return cls()
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    given: dict[str, Any] = {}
    for name, item in value.items():
        kind = fields.get(name)
        if kind is None:
            problems.append((f"{where}.{name}", "unknown setting"))
        elif kind == "bool" and not isinstance(item, bool):
            problems.append((f"{where}.{name}", f"must be true or false, got {item!r}"))
        elif kind == "int" and (isinstance(item, bool) or not isinstance(item, int)):
            problems.append((f"{where}.{name}", f"must be an integer, got {item!r}"))
        elif kind.startswith("float") and not _number(item):
            problems.append((f"{where}.{name}", f"must be a number, got {item!r}"))
        else:
            given[name] = float(item) if kind.startswith("float") else item
    try:
        return cls(**given)
    except ValueError as exc:
        problems.append((where, str(exc)))
        return cls()


def read_resilience(table: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Problems]:
    """The resilience settings of one upstream table (``RESILIENCE_SETTINGS``), as
    ``UpstreamSettings`` fields (absent ones left out), and the problems found."""
    problems: Problems = []
    fields: dict[str, Any] = {}
    if "retry" in table:
        fields["retry"] = _policy(RetryPolicy, table["retry"], f"{where}.retry", problems)
    if "breaker" in table:
        fields["breaker"] = _policy(BreakerPolicy, table["breaker"], f"{where}.breaker", problems)
    if "fallbacks" in table:
        names = table["fallbacks"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append((f"{where}.fallbacks", "must be a list of upstream names"))
        else:
            fields["fallbacks"] = tuple(names)
    for name in ("stale_if_error", "stale_while_revalidate"):
        if name not in table:
            continue
        grace = table[name]
        if grace is False:
            grace = 0.0
        if not _number(grace) or not math.isfinite(grace) or grace < 0:
            problems.append((f"{where}.{name}", f"must be seconds >= 0, got {grace!r}"))
        else:
            fields[name] = float(grace)
    return fields, problems
