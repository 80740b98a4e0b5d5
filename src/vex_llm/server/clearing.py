"""Who may clear what with ``DELETE /v1/cache``: the decision, pure (no I/O, no store).

The admin key clears everything, or one tenant's entries with ``?tenant=X`` (any tenant id,
configured or not: entries outlive a tenant removed from the config). A tenant's own key
clears its own entries, with no parameter or with ``?tenant=`` naming itself; naming another
tenant is a 403. No key or an unknown one is a 401 (a 403 saying so when no admin key is
configured at all). The query is read strictly (``admin.strict_query``): a parameter not
understood is a 400 and never falls through to clearing everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vex_llm.server.admin import refuse_body, strict_query
from vex_llm.server.http import unauthorized
from vex_llm.server.wire import WireError

__all__ = ["ClearScope", "clear_scope"]


@dataclass(frozen=True, slots=True)
class ClearScope:
    """What one ``DELETE /v1/cache`` clears: ``tenant``'s entries, or (``tenant`` None)
    every entry; ``by`` says whose key asked (for the log)."""

    tenant: str | None
    by: Literal["admin", "tenant"]


def clear_scope(
    query: str,
    headers: Mapping[str, str],
    *,
    is_admin: bool,
    own: str | None,
    has_admin: bool,
) -> ClearScope:
    """The scope of a clear by the admin (``is_admin``) or by tenant ``own`` (its own key;
    None: neither); ``WireError`` (401, 403 or 400) when it may not or is not understood."""
    if not is_admin and own is None:
        if not has_admin:
            raise WireError(
                "no admin key is configured; set [admin] in the config or VEX_LLM_ADMIN_KEY",
                status=403,
                type="permission_error",
            )
        raise unauthorized("clearing the cache needs the admin key or a tenant's own key")
    params = strict_query(query, allowed=("tenant",))
    refuse_body(headers)
    tenant = params.get("tenant", own)
    if tenant == "":
        raise WireError("tenant must name a tenant", param="tenant")
    if is_admin:
        return ClearScope(tenant, "admin")
    if tenant != own:
        raise WireError(
            "a tenant's key clears only that tenant's entries; clearing another tenant "
            "needs the admin key",
            param="tenant",
            status=403,
            type="permission_error",
        )
    return ClearScope(tenant, "tenant")
