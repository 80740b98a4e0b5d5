"""Fixtures for the proxy: a loopback uvicorn server running an app in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Mapping

import uvicorn

from vex_llm import LLMProvider, MemoryStore
from vex_llm.server.app import create_app
from vex_llm.server.settings import Settings, TenantSettings, UpstreamSettings, hash_key

KEY_A = "sk-tenant-a-0123456789"
KEY_B = "sk-tenant-b-9876543210"
ADMIN_KEY = "sk-admin-secret-key"
MODEL = "test-model"


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL (``http://127.0.0.1:PORT``)."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listener
    # says TCP; without it, Nagle plus delayed ACKs add 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def make_settings(
    models: Mapping[str, str] | None = None,
    *,
    upstream: Mapping[str, object] | None = None,
    **overrides: object,
) -> Settings:
    """Settings with two tenants (A, B), an admin key and one upstream per model name.

    ``upstream`` sets more fields of every upstream (``{"retry": None}``: no retries).
    """
    names = models or {MODEL: MODEL}
    extra: dict[str, object] = dict(upstream or {})
    fields: dict[str, object] = {
        "upstreams": tuple(
            UpstreamSettings(
                name=n,
                kind="openai",
                base_url="http://127.0.0.1:9/v1",
                model=m,
                **extra,  # type: ignore[arg-type]
            )
            for n, m in names.items()
        ),
        "tenants": (
            TenantSettings("tenant-a", (hash_key(KEY_A),)),
            TenantSettings("tenant-b", (hash_key(KEY_B),)),
        ),
        "admin_key_hashes": (hash_key(ADMIN_KEY),),
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def proxy(
    provider: LLMProvider, settings: Settings | None = None, **app_options: object
) -> AsyncIterator[str]:
    """Serve the proxy in front of ``provider`` (as MODEL); yield the ``/v1`` base URL."""
    settings = settings or make_settings()
    store = MemoryStore(1000, 64 * 1024 * 1024)
    providers = {u.name: provider for u in settings.upstreams}
    app = create_app(settings, providers=providers, store=store, **app_options)  # type: ignore[arg-type]
    async with serve(app) as base:
        yield base + "/v1"
