"""Client keys -> tenant ids, compared in constant time.

A presented key is hashed with SHA-256 and compared with *every* stored digest using
``hmac.compare_digest``, without stopping at a match, so the time taken says nothing about
which key (or how much of one) was right. Only digests are kept in memory.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from vex_llm.server.settings import Settings, hash_key

__all__ = ["KeyRing", "TenantDirectory", "bearer_token"]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class KeyRing:
    """A set of key digests, each mapped to a label; lookups take the same time for any key."""

    def __init__(self, entries: Iterable[tuple[bytes, str]]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, key: str | None) -> str | None:
        """The label of ``key``, or None (also for a missing key)."""
        digest = hash_key(key or "")
        found: str | None = None
        for stored, label in self._entries:
            # No early exit: every digest is compared whatever the outcome.
            if hmac.compare_digest(stored, digest) and key is not None:
                found = label
        return found


class TenantDirectory:
    """Resolves the client of a request to a tenant id, and recognises the admin key."""

    def __init__(
        self,
        tenants: KeyRing,
        admins: KeyRing,
        open_tenant: str | None = None,
    ) -> None:
        self._tenants = tenants
        self._admins = admins
        self.open_tenant = open_tenant

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantDirectory:
        """The directory the settings describe."""
        tenants = KeyRing((h, t.tenant_id) for t in settings.tenants for h in t.key_hashes)
        admins = KeyRing((h, "admin") for h in settings.admin_key_hashes)
        return cls(tenants, admins, settings.open_tenant)

    @property
    def has_admin(self) -> bool:
        """True when an admin key is configured."""
        return len(self._admins) > 0

    def keyed_tenant(self, authorization: str | None) -> str | None:
        """The tenant whose own key the request carries, or None: never the open tenant,
        which anybody is (clearing its entries is the admin's)."""
        return self._tenants.match(bearer_token(authorization))

    def tenant(self, authorization: str | None) -> str | None:
        """The tenant of the request's ``Authorization`` header, or None if unknown."""
        token = bearer_token(authorization)
        tenant = self._tenants.match(token)
        if tenant is None and self.open_tenant is not None:
            return self.open_tenant
        return tenant

    def is_admin(self, authorization: str | None) -> bool:
        """True when the header carries the admin key."""
        return self._admins.match(bearer_token(authorization)) is not None
