"""Reading rate limits and budgets from the config file. Pure: no I/O.

::

    [quota]                     # every tenant's, unless its own table says otherwise
    requests_per_minute = 600   # requests (cache hits count: a hit is a request)
    tokens_per_minute = 200000  # prompt + completion tokens of upstream calls
    daily_budget_usd = 20       # dollars of upstream calls per UTC day
    monthly_budget_usd = 300    # ... per UTC month

    [tenants.acme]
    key_env = "ACME_KEY"
    requests_per_minute = 60    # overrides [quota]'s; the others are inherited
    daily_budget_usd = false    # false: not limited, whatever [quota] says

Every field is optional; without any, nothing is limited and no header is added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vex_llm.quota.policy import QUOTA_FIELDS, TenantQuota

__all__ = ["QUOTA_SETTINGS", "read_quota"]

#: The keys of a ``[quota]`` or ``[tenants.NAME]`` table this module reads.
QUOTA_SETTINGS = frozenset(QUOTA_FIELDS)

Problems = list[tuple[str, str]]


def read_quota(
    table: Mapping[str, Any], where: str, base: TenantQuota | None = None
) -> tuple[TenantQuota | None, Problems]:
    """The quota in ``table`` over ``base`` (the default), and the problems found.

    None when ``table`` sets no quota field (the tenant takes the default as it is).
    """
    given = {name: table[name] for name in QUOTA_FIELDS if name in table}
    if not given:
        return None, []
    problems: Problems = []
    fields: dict[str, Any] = {}
    for name, value in given.items():
        if value is False:
            fields[name] = None
        elif value is True:
            problems.append((f"{where}.{name}", "must be a number, or false for no limit"))
        else:
            fields[name] = value
    quota = dataclasses.replace(base or TenantQuota(), **fields)
    problems += [(f"{where}.{name}", message) for name, message in quota.problems()]
    return (quota if not problems else None), problems
