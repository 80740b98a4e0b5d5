"""``HTTPProvider``: the base of every HTTP backend — base URL, default model, timeout, key,
bounded and scrubbed I/O.

A new backend subclasses it, sets ``kind`` (its wire format, part of the cache identity) and
implements ``complete`` with :meth:`HTTPProvider._post` (a JSON answer), ``stream`` with
:meth:`HTTPProvider._lines` fed to ``providers._http.decoded_sse`` (SSE) or to
:func:`~vex_llm.providers.sse.parse_json` per line, and ``is_available`` with
:meth:`HTTPProvider._probe`. Everything else is done here and in the transport: the error
tree, the deadline over the whole exchange, the caps of :class:`AnswerLimits`, and the
scrubbing of the key from every byte that comes back::

    class EchoProvider(HTTPProvider):
        kind = "echo"

        def __init__(self, base_url: str, model: str = "echo", api_key: str | None = None):
            super().__init__(base_url=base_url, model=model, api_key=api_key,
                             http_client=None, timeout=30.0, label="echo")

        async def complete(self, request: LLMRequest) -> LLMResponse:
            request.validate()
            doc = await self._post(request, "/echo", headers={}, payload={...}, what="echo")
            ...

The API key is held in a :class:`Secret`, whose ``repr`` is masked, so it cannot reach a log
line through ``repr(provider)``, ``vars(provider)`` or a debugger's pretty-printer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar

import httpx

from vex_llm.embeddings import EmbeddingRequest
from vex_llm.models import LLMRequest
from vex_llm.provider import LLMProvider
from vex_llm.providers._client import default_http_client
from vex_llm.providers._http import (
    DEFAULT_LIMITS,
    AnswerLimits,
    post_json,
    probe,
    stream_lines,
)
from vex_llm.redaction import Redactor
from vex_llm.validation import seconds

__all__ = [
    "PASSED_ON_HEADERS",
    "AnswerLimits",
    "HTTPClientOwner",
    "HTTPProvider",
    "Secret",
    "check_timeout",
    "normalise_base_url",
    "passed_on",
]


#: Response headers an answer keeps (``LLMResponse.headers``) for a proxy to pass on: the
#: upstream's request id (for support tickets) and its rate-limit state.
PASSED_ON_HEADERS = ("x-request-id", "x-ratelimit-")


def passed_on(headers: httpx.Headers) -> tuple[tuple[str, str], ...]:
    """The headers among ``headers`` that :data:`PASSED_ON_HEADERS` names (lower-case)."""
    return tuple(
        (name, value) for name, value in headers.items() if name.startswith(PASSED_ON_HEADERS)
    )


class Secret:
    """A credential whose ``repr``/``str`` never show the value; :meth:`reveal` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"api_key must be a str, not {type(value).__name__}")
        if not value.strip():
            raise ValueError("api_key must not be empty (pass None for backends without keys)")
        if any(c in value for c in "\r\n\0"):
            raise ValueError("api_key must not contain line breaks or NUL characters")
        self._value = value

    def reveal(self) -> str:
        """The credential itself, for the one header that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


class HTTPClientOwner:
    """Holds the ``httpx.AsyncClient`` a provider talks through.

    A client passed in belongs to the caller (shared connection pools, test transports) and is
    never closed here; a client created here (httpx over aiohttp, or httpx writing each
    request once: see ``_client``) is closed by :meth:`aclose`. The client is made lazily so that a
    provider can be built outside an event loop.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise TypeError(
                f"http_client must be an httpx.AsyncClient, not {type(client).__name__}"
            )
        self._client = client
        self._owned = client is None
        self._factory = factory or default_http_client
        self._closed = False

    @property
    def client(self) -> httpx.AsyncClient:
        """The client (created on first use when none was given)."""
        if self._closed:
            raise RuntimeError("this provider was closed; create a new one")
        if self._client is None:
            self._client = self._factory()
        return self._client

    @property
    def owned(self) -> bool:
        """True when the client was created here and is closed by :meth:`aclose`."""
        return self._owned

    async def aclose(self) -> None:
        """Close the client if it is owned. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned and self._client is not None:
            await self._client.aclose()


def normalise_base_url(base_url: str) -> str:
    """``base_url`` with a lower-case scheme and host and no trailing slash.

    ``ValueError`` unless it is an absolute http(s) URL; credentials in the URL are refused,
    since the base URL appears in names, logs and cache identities.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    try:
        url = httpx.URL(base_url.strip())
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from exc
    if url.userinfo:  # checked first: the other errors echo the URL
        raise ValueError("base_url must not carry credentials; pass api_key instead")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    if url.query or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    # httpx already lower-cases the scheme and host and drops a default port.
    return str(url.copy_with(path=url.path.rstrip("/") or "/")).rstrip("/")


def check_timeout(timeout: object) -> float:
    """A provider's default timeout: a positive, finite number of seconds (or timedelta)."""
    value = seconds("timeout", timeout, optional=False)
    assert value is not None
    return value


class HTTPProvider(LLMProvider):
    """Base of the HTTP providers: validates and keeps the common settings.

    ``kind`` labels the wire format in the cache identity; ``label`` prefixes ``name()``.
    ``answer_limits`` caps what is read of an answer (a subclass need not pass it; the
    attribute may be replaced, e.g. by the proxy from its settings).
    """

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        http_client: httpx.AsyncClient | None,
        timeout: float,
        label: str,
        answer_limits: AnswerLimits = DEFAULT_LIMITS,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a non-empty str")
        self.model = model
        self.timeout = check_timeout(timeout)
        self.label = label
        self._key = None if api_key is None else Secret(api_key)
        self._redactor = Redactor(() if self._key is None else (self._key.reveal(),))
        self._http = HTTPClientOwner(http_client)
        # Request URLs parsed once: httpx parses a str URL on every request (~12 µs a miss).
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        if not isinstance(answer_limits, AnswerLimits):
            raise TypeError(
                f"answer_limits must be AnswerLimits, not {type(answer_limits).__name__}"
            )
        self.answer_limits = answer_limits

    def _timeout_for(self, request: LLMRequest | EmbeddingRequest) -> float:
        return request.timeout if request.timeout is not None else self.timeout

    def _model_for(self, request: LLMRequest) -> str:
        return request.model or self.model

    def _url(self, path: str) -> httpx.URL:
        """``{base_url}{path}``, parsed once per path (bounded: a handful of paths)."""
        key = (self.base_url, path)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= 64:
                self._urls.clear()
            url = self._urls[key] = httpx.URL(f"{self.base_url}{path}")
        return url

    async def _probe(self, path: str, headers: dict[str, str]) -> bool:
        """True when ``GET {base_url}{path}`` answers 2xx within min(timeout, 10 s)."""
        return await probe(
            self._http.client,
            f"{self.base_url}{path}",
            headers=headers,
            time_limit=min(self.timeout, 10.0),
        )

    async def _post(
        self,
        request: LLMRequest | EmbeddingRequest,
        path: str,
        *,
        headers: dict[str, str],
        payload: dict[str, Any],
        what: str,
        on_headers: Callable[[httpx.Headers], None] | None = None,
    ) -> dict[str, Any]:
        """POST ``payload`` to ``{base_url}{path}`` within the request's timeout; the JSON."""
        return await post_json(
            self._http.client,
            self._url(path),
            headers=headers,
            payload=payload,
            time_limit=self._timeout_for(request),
            what=what,
            redactor=self._redactor,
            limits=self.answer_limits,
            on_headers=on_headers,
        )

    def _lines(
        self,
        request: LLMRequest,
        path: str,
        *,
        headers: dict[str, str],
        payload: dict[str, Any],
        what: str,
        on_headers: Callable[[httpx.Headers], None] | None = None,
    ) -> AsyncGenerator[list[str], None]:
        """POST ``payload`` and iterate the answer's lines (a list per network read), all
        within the request's timeout."""
        return stream_lines(
            self._http.client,
            self._url(path),
            headers=headers,
            payload=payload,
            time_limit=self._timeout_for(request),
            what=what,
            redactor=self._redactor,
            limits=self.answer_limits,
            on_headers=on_headers,
        )

    def name(self) -> str:
        """``<label>:<default model>``, e.g. ``openai:gpt-4o-mini``."""
        return f"{self.label}:{self.model}"

    def cache_identity(self) -> tuple[str, ...]:
        """``(kind, normalised base URL, default model)``; never the key."""
        return (self.kind, self.base_url, self.model)

    def __repr__(self) -> str:
        key = "None" if self._key is None else "'***'"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key={key}, timeout={self.timeout:g})"
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it. Idempotent."""
        await self._http.aclose()
