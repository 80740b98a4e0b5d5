"""``create_app``: the OpenAI-compatible caching proxy as a Starlette application.

Every request through a front door (``server.doors``: chat completions, Anthropic's messages,
OpenAI's legacy completions and Responses, ...) goes: client key (``Authorization: Bearer``,
or ``x-api-key``)
-> tenant (401 if unknown); body read under the size cap (413, checked against Content-Length
*and* counted while reading); body -> ``LLMRequest`` by the door's wire format (400 naming the
param); the request's model -> its upstream's ``CachedProvider`` (404 if none); then a cached
lookup, or a cached stream sent as SSE, written back by the door. Failures leave in the door's
error shape. Each upstream has its own ``CachedProvider``; all share one store (keys carry the
upstream's identity and the tenant, so they never collide). Inside each cache, retries and a
circuit breaker guard the upstream; a model with fallbacks is asked through a chain of caches
(``server.guarded``), and ``x-vex-upstream`` says which upstream answered. Embeddings
(``/v1/embeddings``) take a sibling path through the same entrance, chain and failure
mapping, cached per input (``x-vex-cache: hit|miss|partial|coalesced|bypass`` and
``x-vex-cache-hits``, the inputs served from the cache).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from vex_llm.cache.provider import CachedProvider, CacheResult
from vex_llm.cache.stores.base import STORE_FAILURES, CacheStore
from vex_llm.cache.stores.breaker import BreakerStore, guard_store
from vex_llm.cache.streaming import CachedStream
from vex_llm.embeddings import EmbeddingRequest
from vex_llm.errors import InputTooLarge, LLMError
from vex_llm.models import CacheControl, Chunk, LLMRequest, Usage
from vex_llm.provider import LLMProvider
from vex_llm.quota import UPSTREAM_OUTCOMES, Refusal, Ticket
from vex_llm.quota.headers import HeaderStyle
from vex_llm.quota.metrics import QuotaCollector
from vex_llm.server.admin import (
    admin_figures,
    compact,
    one_tenant,
    refuse_body,
    strict_query,
    tenant_figures,
    window_figures,
)
from vex_llm.server.cache_control import cache_control
from vex_llm.server.clearing import clear_scope
from vex_llm.server.dashboard import Dashboard
from vex_llm.server.doors import Door, DoorRequest, Rendered
from vex_llm.server.doors.chat import ChatDoor
from vex_llm.server.doors.completions import CompletionsDoor
from vex_llm.server.doors.embeddings import EmbeddingCall, EmbeddingsDoor
from vex_llm.server.doors.messages import MessagesDoor
from vex_llm.server.doors.responses import ResponsesDoor
from vex_llm.server.failures import Failure, failure_for
from vex_llm.server.guarded import ResilienceCollector, build_guarded, fallback_chains
from vex_llm.server.http import (
    END_OF_RESPONSE,
    BodyDeadline,
    OneAuthorization,
    SSEResponse,
    cache_headers,
    error_response,
    http_error,
    json_response,
    read_body,
    unauthorized,
)
from vex_llm.server.metrics import ANONYMOUS, UNKNOWN_MODEL, ProxyMetrics
from vex_llm.server.money import answer_dollars, embedding_dollars
from vex_llm.server.quota import build_gate, refusal_failure, with_quota_figures
from vex_llm.server.settings import Settings
from vex_llm.server.tenants import TenantDirectory
from vex_llm.server.upstreams import build_provider, upstream_prices, upstream_secret
from vex_llm.server.window import SampleRing, keep_recording
from vex_llm.server.wire import WireError

try:
    import anyio
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the proxy needs the server extra: pip install 'vex-llm[server]'") from exc

__all__ = ["create_app"]

#: A request kind a chain serves: chat or embeddings.
Q = TypeVar("Q", LLMRequest, EmbeddingRequest)
#: A parsed call of a door: chat-like or embeddings.
C = TypeVar("C", DoorRequest, EmbeddingCall)

log = logging.getLogger("vex_llm.server")

_READY_TIMEOUT = 5.0
_PROBE_KEY = "vex-llm:readiness-probe"


def _store_unavailable(what: str, exc: BaseException) -> Response:
    """503 for an admin call the failing store could not answer (the detail goes to the log:
    it names the store's host)."""
    log.warning("%s failed: the cache store is unavailable: %s", what, exc)
    return error_response(
        WireError(
            f"{what} failed: the cache store is unavailable (chat completions are answered "
            "from upstream meanwhile); try again later",
            status=503,
            type="server_error",
            code="cache_store_unavailable",
        )
    )


def _client_key(request: Request) -> str | None:
    """The client's key as an ``Authorization`` value: its own, or Anthropic's ``x-api-key``
    (which Anthropic's SDKs send) as a bearer token. More than one ``x-api-key`` is none."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return authorization
    keys = request.headers.getlist("x-api-key")
    return f"Bearer {keys[0]}" if len(keys) == 1 else None


def _text_chars(chunk: Chunk) -> int:
    """The generated characters in ``chunk``: its text and tool-call arguments."""
    calls = chunk.tool_calls
    if not calls:  # most chunks: no generator for an empty sum
        return len(chunk.delta)
    return len(chunk.delta) + sum(len(call.arguments) for call in calls)


class _Proxy:
    """The request handlers and the state they share."""

    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, LLMProvider],
        store: CacheStore,
        clock: Callable[[], float],
        secrets: tuple[str, ...],
        counters_since: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = TenantDirectory.from_settings(settings)
        self.metrics = ProxyMetrics()
        # The last hour of the figures; counters_since: when the server's counters began.
        self.window = SampleRing(time.monotonic, origin=counters_since)
        self.secrets = secrets
        # Each upstream guarded (retries, breaker) and cached; each model name a chain of
        # its upstream's cache and its fallbacks' (see server.guarded).
        # Prices resolved once, here: a catalogue lookup must never delay a request.
        self.prices = upstream_prices(settings.upstreams)
        self.guarded = build_guarded(settings, providers, store, clock, self.prices)
        self.cached = {name: g.cached for name, g in self.guarded.items()}
        self.chains = fallback_chains(settings, self.guarded)
        self.upstream_of = {g.cached: name for name, g in self.guarded.items()}
        self.metrics.watch(ResilienceCollector(self.guarded, self.chains, settings))
        self.upstream_model = {u.name: u.model for u in settings.upstreams}
        self._embeddings_door = EmbeddingsDoor()
        if isinstance(store, BreakerStore):
            self.metrics.watch_breaker(store.breaker)
        # Rate limits and budgets per tenant (vex_llm.quota), shared when the store is Redis.
        self.quota = build_gate(settings, store, self.prices)
        self.metrics.watch(QuotaCollector(self.quota))

    async def aclose(self) -> None:
        # Each cache closes its upstream; the store they share is closed once, here.
        await self.quota.aclose()
        for cached in self.cached.values():
            with contextlib.suppress(Exception):
                await cached.aclose()
        with contextlib.suppress(Exception):
            await self.store.aclose()

    # -- chat completions ------------------------------------------------------------------

    def _for_member(self, cached: CachedProvider, request: Q) -> Q:
        """``request`` as the upstream behind ``cached`` is asked it (its own model name)."""
        model = self.upstream_model[self.upstream_of[cached]]
        return request if request.model == model else dataclasses.replace(request, model=model)

    async def _lookup(self, model: str, request: LLMRequest) -> tuple[CacheResult, str]:
        """The answer from ``model``'s upstream or, failing that, its fallbacks; who answered."""
        chain = self.chains[model]
        result, index = await chain.first_answer(
            request, lambda cached, r: cached.complete_result(self._for_member(cached, r))
        )
        return result, self.upstream_of[chain.providers[index]]

    async def _open_stream(
        self, model: str, request: LLMRequest
    ) -> tuple[CachedStream, Chunk | None, str]:
        """The stream from ``model``'s upstream or its fallbacks, its first chunk (read
        ahead only when there are fallbacks: a stream falls back before its first chunk)
        and who answered."""
        chain = self.chains[model]
        if len(chain.providers) == 1:
            return await self.cached[model].open_stream(request), None, model

        async def open_and_peek(
            cached: CachedProvider, r: LLMRequest
        ) -> tuple[CachedStream, Chunk | None]:
            stream = await cached.open_stream(self._for_member(cached, r))
            try:
                return stream, await anext(stream)
            except StopAsyncIteration:
                return stream, None
            except BaseException:
                await stream.aclose()
                raise

        (stream, first), index = await chain.first_answer(request, open_and_peek)
        return stream, first, self.upstream_of[chain.providers[index]]

    def _render(
        self,
        rendered: Rendered,
        headers: Mapping[str, str] | None = None,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> Response:
        """``rendered`` as a response; ``after`` runs once it has been sent."""
        return Response(
            rendered.body,
            rendered.status,
            headers={**rendered.headers, **(headers or {})},
            media_type=rendered.media_type,
            background=None if after is None else BackgroundTask(after),
        )

    def _fail(
        self,
        door: Door | EmbeddingsDoor,
        failure: Failure,
        tenant: str,
        model: str,
        exc: LLMError | None,
        ticket: Ticket | None = None,
    ) -> Response:
        self.metrics.status(tenant, model, failure.status, door.endpoint)
        if exc is not None and failure.status >= 500:
            self.metrics.upstream_error(tenant, model, type(exc).__name__)
            log.warning("upstream %s failed: %s", model, failure.message)
        headers = {**ticket.headers(), **failure.headers} if ticket else failure.headers
        return self._render(door.error(failure.as_wire()), headers)

    def _refuse(
        self, door: Door | EmbeddingsDoor, refusal: Refusal, tenant: str, model: str
    ) -> Response:
        """The quota gate's 429 (counted by reason)."""
        self.metrics.refused(tenant, refusal.reason)
        return self._fail(door, refusal_failure(refusal), tenant, model, None)

    async def _failed(
        self, door: Door | EmbeddingsDoor, ticket: Ticket, exc: LLMError, tenant: str, model: str
    ) -> Response:
        """A failed lookup: its reservation given back; the quota's 429 when the miss was of
        the only-if-cached lookup the gate imposed, the upstream's failure otherwise."""
        refusal = await ticket.failed(exc)
        if refusal is not None:
            return self._refuse(door, refusal, tenant, model)
        failure = self._failure(exc)
        if isinstance(exc, InputTooLarge) and isinstance(door, EmbeddingsDoor):
            failure = dataclasses.replace(failure, param="input")
        return self._fail(door, failure, tenant, model, exc, ticket)

    def _failure(self, exc: LLMError) -> Failure:
        return failure_for(exc, retry_after_cap=self.settings.retry_after_cap, secrets=self.secrets)

    def door(self, door: Door) -> Callable[[Request], Awaitable[Response]]:
        """The route handler of ``door``: the one request path every door shares."""

        async def handle(request: Request) -> Response:
            return await self._serve(request, door)

        return handle

    async def _admit(
        self, request: Request, door: Door | EmbeddingsDoor
    ) -> tuple[str, bytes, CacheControl] | Response:
        """Every door's entrance: the tenant (401), the body under the cap (413) and the
        ``Cache-Control`` header (400); an error response in the door's shape otherwise."""
        tenant = self.directory.tenant(_client_key(request))
        if tenant is None:
            self.metrics.status(ANONYMOUS, UNKNOWN_MODEL, 401, door.endpoint)
            return self._render(door.error(unauthorized()))
        try:
            body = await read_body(request, self.settings.max_body_bytes)
            control = cache_control(request.headers.get("cache-control"))
        except WireError as err:
            self.metrics.status(tenant, UNKNOWN_MODEL, err.status, door.endpoint)
            return self._render(door.error(err))
        return tenant, body, control

    def _unknown_model(self, door: Door | EmbeddingsDoor, tenant: str, model: str) -> Response:
        self.metrics.status(tenant, UNKNOWN_MODEL, 404, door.endpoint)
        return self._render(
            door.error(
                WireError(
                    f"the model {model!r} does not exist here; GET /v1/models lists them",
                    param="model",
                    status=404,
                    code="model_not_found",
                )
            )
        )

    async def _enter(
        self,
        request: Request,
        door: Door | EmbeddingsDoor,
        parse: Callable[..., C],
        style: HeaderStyle = "openai",
    ) -> tuple[str, C, Ticket] | Response:
        """Every door's way in, after ``_admit`` (401, 413, a bad ``Cache-Control``): the
        body parsed by ``parse`` (400), its model known (404), the tenant's quota (429);
        the tenant, the call and its quota ticket, or the error response."""
        admitted = await self._admit(request, door)
        if isinstance(admitted, Response):
            return admitted
        tenant, body, control = admitted
        try:
            call = parse(body, tenant=tenant, control=control, upstream_model=self.upstream_model)
        except WireError as err:
            self.metrics.status(tenant, UNKNOWN_MODEL, err.status, door.endpoint)
            return self._render(door.error(err))
        if call.model not in self.cached:
            return self._unknown_model(door, tenant, call.model)
        ticket = await self.quota.admit(tenant, len(body), call.request, style)
        if ticket.refusal is not None:
            return self._refuse(door, ticket.refusal, tenant, call.model)
        return tenant, call, ticket

    async def _serve(self, request: Request, door: Door) -> Response:
        started = time.perf_counter()
        # Anthropic's clients read Anthropic's rate-limit headers.
        style: HeaderStyle = "anthropic" if door.endpoint == "messages" else "openai"
        entered = await self._enter(request, door, door.parse, style)
        if isinstance(entered, Response):
            return entered
        tenant, call, ticket = entered
        if ticket.request is not call.request:  # only-if-cached: no headroom for the upstream
            call = dataclasses.replace(call, request=ticket.request)
        if call.stream:
            return await self._stream(door, call, tenant, started, ticket)
        try:
            result, answered_by = await self._lookup(call.model, call.request)
        except LLMError as exc:
            return await self._failed(door, ticket, exc, tenant, call.model)
        response = result.response
        # A hit's reserved tokens go back after the answer has left: with a shared counter
        # that is a round trip the client does not wait for.
        give_back = ticket.give_back_later(result.outcome)
        if give_back is None:
            await ticket.settle(result.outcome, response.usage, answered_by)
        self.metrics.observe(
            tenant,
            call.model,
            result.outcome,
            time.perf_counter() - started,
            response.usage.total_tokens,
            door.endpoint,
            answer_dollars(self.prices[answered_by], result.outcome, response.usage),
        )
        self.metrics.status(tenant, call.model, 200, door.endpoint)
        headers = cache_headers(result.outcome, result.key, result.age)
        headers["x-vex-upstream"] = answered_by
        headers.update(response.headers)  # the upstream's request id and limits, misses only
        ticket.apply(headers)  # the tenant's own limits replace the upstream's
        return self._render(door.answer(response, call), headers, give_back)

    async def _stream(
        self, door: Door, call: DoorRequest, tenant: str, started: float, ticket: Ticket
    ) -> Response:
        try:
            stream, peeked, answered_by = await self._open_stream(call.model, call.request)
        except LLMError as exc:
            return await self._failed(door, ticket, exc, tenant, call.model)
        if peeked is None:
            # The status line waits for the upstream's first event (or its failure), so a
            # stream gets the same status codes and headers as a JSON request would; errors
            # after the first byte travel in-band.
            try:
                peeked = await anext(stream, None)
            except LLMError as exc:
                await stream.aclose()
                return await self._failed(door, ticket, exc, tenant, call.model)
            except BaseException:
                await stream.aclose()
                raise
        if stream.outcome not in UPSTREAM_OUTCOMES:  # a replay: its reservation goes back now
            await ticket.settle(stream.outcome, None, answered_by)
        final: list[Chunk] = []  # the terminal chunk, once it is out
        # Characters generated so far (text, tool-call arguments): what a stream that breaks
        # off before its usage is charged for (Ticket.broke_off).
        sent = [0]
        done: list[bool] = []  # the stream ended with its terminal chunk and was counted

        async def chunks() -> AsyncIterator[Chunk]:
            if peeked is not None:
                sent[0] += _text_chars(peeked)
                yield peeked
                if peeked.is_final:
                    final.append(peeked)
                    return
            async for chunk in stream:
                sent[0] += _text_chars(chunk)
                if chunk.is_final:
                    final.append(chunk)
                    yield chunk
                    return  # the rest of the stream is the store write: events() waits
                yield chunk

        async def events() -> AsyncIterator[bytes]:
            # One write per batch of chunks at hand, not one per chunk: a replay is one write;
            # a live stream writes whenever it would otherwise wait. After the terminal chunk
            # the response ends (END_OF_RESPONSE), and only then does this wait for the
            # answer to be stored and count it: the client does not wait for our bookkeeping.
            pending: list[bytes] = []
            try:
                async with contextlib.aclosing(door.stream(chunks(), call)) as source:
                    async for line in source:
                        pending.append(line)
                        if not final and not stream.ready():
                            yield b"".join(pending)
                            pending.clear()
                    if pending:
                        yield b"".join(pending)
                        pending.clear()
                ended = time.perf_counter()
                if final:
                    yield END_OF_RESPONSE
                    async for _ in stream:  # nothing comes after the terminal chunk
                        pass
                usage = final[0].usage if final else None
                await ticket.settle(stream.outcome, usage, answered_by)
                usage = usage or Usage()
                self.metrics.observe(
                    tenant,
                    call.model,
                    stream.outcome,
                    ended - started,
                    usage.total_tokens,
                    door.endpoint,
                    answer_dollars(self.prices[answered_by], stream.outcome, usage),
                )
                self.metrics.status(tenant, call.model, 200, door.endpoint)
                done.append(True)
            except LLMError as exc:
                # Headers are gone already: the error travels in-band, and the missing end
                # marker tells the client the stream is incomplete.
                failure = self._failure(exc)
                self.metrics.upstream_error(tenant, call.model, type(exc).__name__)
                self.metrics.status(tenant, call.model, failure.status, door.endpoint)
                log.warning("stream from %s failed: %s", call.model, failure.message)
                # The text batched before the failure goes first: it was answered.
                yield b"".join([*pending, door.stream_error(failure.as_wire())])
            finally:
                with anyio.CancelScope(shield=True):
                    if stream.outcome in UPSTREAM_OUTCOMES and not done:
                        # Broken off (the client left, the upstream failed): the call was
                        # still made; its budget and dollars are charged an estimate.
                        usage = await ticket.broke_off(answered_by, sent[0])
                        price = self.prices[answered_by]
                        self.metrics.charge(
                            tenant, call.model, answer_dollars(price, "miss", usage)
                        )
                    await stream.aclose()

        headers = cache_headers(stream.outcome, stream.key, stream.age)
        headers["x-vex-upstream"] = answered_by
        if peeked is not None:
            headers.update(peeked.headers)
        ticket.apply(headers)
        return SSEResponse(events(), headers)

    # -- embeddings: per input, beside the doors --------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        """``POST /v1/embeddings``: the doors' entrance, chain and failure mapping, with each
        input cached on its own (``cache.embeddings``)."""
        started = time.perf_counter()
        door = self._embeddings_door
        entered = await self._enter(request, door, door.parse)
        if isinstance(entered, Response):
            return entered
        tenant, call, ticket = entered
        chain = self.chains[call.model]
        try:
            result, index = await chain.first_answer(
                ticket.request,
                lambda cached, r: cached.embed_result(self._for_member(cached, r)),
            )
        except LLMError as exc:
            return await self._failed(door, ticket, exc, tenant, call.model)
        response = result.response
        answered_by = self.upstream_of[chain.providers[index]]
        await ticket.settle(result.outcome, response.usage, answered_by)
        elapsed = time.perf_counter() - started
        self.metrics.observe(
            tenant,
            call.model,
            result.outcome,
            elapsed,
            response.tokens_saved,
            door.endpoint,
            embedding_dollars(self.prices[answered_by], response.usage, response.tokens_saved),
        )
        self.metrics.status(tenant, call.model, 200, door.endpoint)
        headers = {
            "x-vex-cache": result.outcome,
            "x-vex-cache-hits": str(result.hits),
            "x-vex-upstream": answered_by,
        }
        if result.coalesced:
            headers["x-vex-cache-coalesced"] = str(result.coalesced)
        headers.update(response.headers)  # the upstream's request id and limits
        ticket.apply(headers)
        return self._render(door.answer(result, call), headers)

    # -- the rest --------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        if self.directory.tenant(request.headers.get("authorization")) is None:
            return error_response(unauthorized())
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "vex-llm"}
            for name in self.cached
        ]
        return json_response({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        upstreams = {}
        for name, cached in self.cached.items():
            try:
                with anyio.fail_after(_READY_TIMEOUT):
                    upstreams[name] = await cached.inner.is_available()
            except Exception:
                upstreams[name] = False
        try:
            with anyio.fail_after(_READY_TIMEOUT):
                await self.store.get(_PROBE_KEY)  # at once while the store's circuit is open
            store_ok = True
        except Exception:
            store_ok = False
        # A failing store does not make the proxy unready: requests go upstream meanwhile
        # (fail-open), and every replica shares the store, so taking them all out of
        # rotation would turn a cache outage into a full one. It is reported below. The
        # same holds for a down upstream whose requests are still answered: from stale
        # entries (stale_if_error) or by an available fallback.
        ready = all(
            upstreams[u.name] or u.stale_grace > 0 or any(upstreams[f] for f in u.fallbacks)
            for u in self.settings.upstreams
        )
        body: dict[str, Any] = {
            "status": "ready" if ready else "not ready",
            "upstreams": upstreams,
            "store": store_ok,
            # An open breaker reads as an unavailable upstream above, without a probe.
            "breakers": {
                name: g.breaker.state for name, g in self.guarded.items() if g.breaker is not None
            },
        }
        if isinstance(self.store, BreakerStore):
            body["store_circuit"] = self.store.breaker.state
        return json_response(body, 200 if ready else 503)

    async def metrics_text(self, request: Request) -> Response:
        if self.settings.metrics_auth and not self.directory.is_admin(
            request.headers.get("authorization")
        ):
            return error_response(unauthorized("/metrics needs the admin key"))
        body, content_type = self.metrics.render()
        return Response(body, headers={"content-type": content_type})

    async def cache_stats(self, request: Request) -> Response:
        return await self.stats_for(request, request.headers.get("authorization"))

    def _samples(self) -> list[tuple[str, Mapping[str, str], float]]:
        return compact(self.metrics.samples())

    def _figures(self, tenant: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every tenant's figures since the start, and the windows' (``window_figures``)."""
        samples = self._samples()
        seconds, hour = self.window.window(samples)
        windows = window_figures(samples, hour, seconds, self.window.uptime(), tenant)
        return tenant_figures(samples), windows

    async def stats_for(self, request: Request, authorization: str | None) -> Response:
        """The ``/v1/cache/stats`` answer to ``authorization`` (also the dashboard's data)."""
        # The admin sees every figure; a tenant only its own (see server/admin.py).
        is_admin = self.directory.is_admin(authorization)
        tenant = None if is_admin else self.directory.tenant(authorization)
        if not is_admin and tenant is None:
            return error_response(unauthorized())
        try:
            strict_query(request.url.query)
            refuse_body(request.headers)
        except WireError as err:
            return error_response(err)
        # In a thread: with many tenants and models this takes milliseconds the event loop
        # would otherwise not spend answering requests.
        tenants, windows = await anyio.to_thread.run_sync(self._figures, tenant)
        if tenant is not None:
            own = one_tenant(tenants, tenant)
            return json_response({**own, **await self.quota.figures(tenant), **windows})
        tenants = await with_quota_figures(self.quota, self.settings, tenants)
        stats = {}
        for name, cached in self.cached.items():
            try:
                stats[name] = await cached.astats()
            except STORE_FAILURES as exc:
                return _store_unavailable("reading the cache stats", exc)
        return json_response({**admin_figures(stats, tenants), **windows})

    async def cache_clear(self, request: Request) -> Response:
        # Who may clear what: server/clearing.py (admin: all or ?tenant=X; a tenant: its own).
        authorization = request.headers.get("authorization")
        is_admin = self.directory.is_admin(authorization)
        try:
            scope = clear_scope(
                request.url.query,
                request.headers,
                is_admin=is_admin,
                own=None if is_admin else self.directory.keyed_tenant(authorization),
                has_admin=self.directory.has_admin,
            )
        except WireError as err:
            return error_response(err)
        tenant = scope.tenant
        if tenant is None:
            try:
                removed = await self.store.count()
                await self.store.clear()
            except STORE_FAILURES as exc:
                return _store_unavailable("clearing the cache", exc)
            log.info("cache cleared by the admin (%d entries)", removed)
            return json_response({"cleared": True, "entries_removed": removed})
        try:
            removed = await self.store.clear_tenant(tenant)
        except STORE_FAILURES as exc:
            return _store_unavailable("clearing the tenant's cache entries", exc)
        log.info(
            "cache entries of tenant %r cleared by the %s (%d entries)", tenant, scope.by, removed
        )
        return json_response({"cleared": True, "tenant": tenant, "entries_removed": removed})


def create_app(
    settings: Settings,
    providers: Mapping[str, LLMProvider] | None = None,
    store: CacheStore | None = None,
    *,
    clock: Callable[[], float] = time.time,
    counters_since: float | None = None,
) -> Starlette:
    """The proxy for ``settings``.

    ``providers`` (model name -> provider) replaces the upstreams the settings describe (tests,
    the embedded local model); ``store`` replaces the store opened from ``settings.store_url``
    (which gets a circuit breaker, ``settings.store_breaker``; a store passed in is used as it
    is). The app owns both and closes them when it shuts down. ``counters_since`` is the
    ``time.monotonic()`` at which the metrics it reads began at zero, when they are older than
    the app (the workers of ``--workers`` share counters from the server's start).
    """
    secrets: tuple[str, ...] = ()
    if providers is None:
        bounds = settings.limits.answer_limits()
        providers = {u.name: build_provider(u, answer_limits=bounds) for u in settings.upstreams}
        secrets = tuple(filter(None, (upstream_secret(u) for u in settings.upstreams)))
    if store is None:
        from vex_llm.cache.stores.url import open_store

        cache = settings.cache
        # Entries of upstreams that serve stale answers are kept that much past the ttl.
        grace = max(u.stale_grace for u in settings.upstreams)
        store = open_store(
            settings.store_url,
            max_entries=cache.max_entries,
            max_bytes=cache.max_bytes,
            ttl=None if cache.ttl_seconds is None else cache.ttl_seconds + grace,
            tti=cache.tti_seconds,
        )
        # A failing or hung SQLite/Redis store is skipped, not waited for (memory stays bare).
        store = guard_store(store, settings.store_breaker)
    proxy = _Proxy(settings, providers, store, clock, secrets, counters_since)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(keep_recording, proxy.window, proxy._samples)
                yield
                tasks.cancel_scope.cancel()
        finally:
            await proxy.aclose()

    messages = MessagesDoor()

    def refusal(path: str, err: WireError, headers: Mapping[str, str]) -> Response:
        # The middlewares' refusals in the shape of the door the client called.
        if path == "/v1/messages":
            return proxy._render(messages.error(err), headers)
        return error_response(err, headers)

    dashboard = Dashboard(proxy.directory, proxy.stats_for)

    routes = [
        Route("/v1/chat/completions", proxy.door(ChatDoor()), methods=["POST"]),
        Route("/v1/messages", proxy.door(messages), methods=["POST"]),
        Route("/v1/completions", proxy.door(CompletionsDoor()), methods=["POST"]),
        Route("/v1/responses", proxy.door(ResponsesDoor()), methods=["POST"]),
        Route("/v1/embeddings", proxy.embeddings, methods=["POST"]),
        Route("/v1/models", proxy.models, methods=["GET"]),
        Route("/healthz", proxy.healthz, methods=["GET"]),
        Route("/readyz", proxy.readyz, methods=["GET"]),
        Route("/metrics", proxy.metrics_text, methods=["GET"]),
        Route("/v1/cache/stats", proxy.cache_stats, methods=["GET"]),
        Route("/v1/cache", proxy.cache_clear, methods=["DELETE"]),
        *dashboard.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
        middleware=[
            Middleware(OneAuthorization, render=refusal),
            Middleware(BodyDeadline, timeout=settings.limits.body_timeout, render=refusal),
        ],
    )
    app.state.proxy = proxy
    return app
