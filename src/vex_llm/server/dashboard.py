"""``GET /ui``: the dashboard page, its assets, and its data, for a person with a browser.

The page and its script and stylesheet ship inside the package (``server/ui/``) and are served
from memory: no CDN, nothing fetched from elsewhere. The script polls ``/ui/stats``, which is
``/v1/cache/stats``'s own answer (one handler: the figures on the page are the API's).

Keys: a browser cannot send a bearer token when a person types an address, so ``/ui`` answers
a request without a valid key with a 401 and ``WWW-Authenticate: Basic``: the browser asks for
a user name and password, and the key goes in the password (the user name is ignored; a key
typed as the user name with an empty password is taken too). The browser then sends the same
credentials with the script's requests. ``Authorization: Bearer`` works as on the API. Never a
key in the URL: query strings land in access logs. The admin key shows every tenant, a tenant
key its own figures only, as on ``/v1/cache/stats``.

Every answer carries a Content-Security-Policy that allows only this origin's script, style and
data (no inline code), and the figures are ``no-store``: they are one tenant's business.
"""

from __future__ import annotations

import base64
import binascii
import importlib.resources
from collections.abc import Awaitable, Callable

from vex_llm.server.http import error_response, unauthorized
from vex_llm.server.tenants import TenantDirectory
from vex_llm.server.wire import WireError

try:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the proxy needs the server extra: pip install 'vex-llm[server]'") from exc

__all__ = ["SECURITY_HEADERS", "Dashboard", "bearer_from"]

#: Sent with every dashboard answer: only this origin's files, nothing inline, no framing.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_CHALLENGE = 'Basic realm="vex-llm dashboard", charset="UTF-8"'
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_MAX_AUTHORIZATION = 4096  # a key is a few dozen characters


def bearer_from(authorization: str | None) -> str | None:
    """``authorization`` as the API reads it: ``Basic`` credentials become ``Bearer <key>``
    (the password, or the user name when the password is empty); anything else is unchanged.
    Malformed Basic credentials are None (no key)."""
    if authorization is None or len(authorization) > _MAX_AUTHORIZATION:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return authorization
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    key = password if colon and password else user
    return f"Bearer {key}" if key and not any(c.isspace() for c in key) else None


def _read(name: str) -> bytes:
    return importlib.resources.files("vex_llm.server.ui").joinpath(name).read_bytes()


class Dashboard:
    """The dashboard's routes over ``directory`` (who may look) and ``stats`` (the answer of
    ``/v1/cache/stats`` to a request and its ``Authorization``)."""

    def __init__(
        self,
        directory: TenantDirectory,
        stats: Callable[[Request, str | None], Awaitable[Response]],
    ) -> None:
        self._directory = directory
        self._stats = stats
        # Read once: a few kilobytes, and a request never touches the disk.
        self._page = _read("index.html")
        self._assets = {name: _read(name) for name in _ASSETS}

    def routes(self) -> list[Route]:
        """``/ui`` (the page), ``/ui/stats`` (its data) and ``/ui/<asset>``."""
        return [
            Route("/ui", self.page, methods=["GET"]),
            Route("/ui/stats", self.stats, methods=["GET"]),
            Route("/ui/{name}", self.asset, methods=["GET"]),
        ]

    def _allowed(self, authorization: str | None) -> bool:
        d = self._directory
        return d.is_admin(authorization) or d.tenant(authorization) is not None

    async def page(self, request: Request) -> Response:
        """The page, to a valid key; else a 401 that makes the browser ask for one."""
        if not self._allowed(bearer_from(request.headers.get("authorization"))):
            return error_response(
                unauthorized("the dashboard needs a key: the admin key or a tenant key"),
                {**SECURITY_HEADERS, "www-authenticate": _CHALLENGE},
            )
        headers = {**SECURITY_HEADERS, "cache-control": "no-store"}
        return Response(self._page, headers=headers, media_type="text/html; charset=utf-8")

    async def stats(self, request: Request) -> Response:
        """``/v1/cache/stats``'s answer for the page's credentials (401 without a key)."""
        response = await self._stats(request, bearer_from(request.headers.get("authorization")))
        response.headers.update({**SECURITY_HEADERS, "cache-control": "no-store"})
        return response

    async def asset(self, request: Request) -> Response:
        """The script or the stylesheet (the same for everyone, no figures: no key needed)."""
        name = request.path_params["name"]
        if name not in self._assets:
            return error_response(_not_found(name), SECURITY_HEADERS)
        headers = {**SECURITY_HEADERS, "cache-control": "no-cache"}
        return Response(self._assets[name], headers=headers, media_type=_ASSETS[name])


def _not_found(name: str) -> WireError:
    return WireError(f"no dashboard file {name!r}", status=404, type="not_found_error")
