"""Running the proxy: the three ways to get Settings, and uvicorn with clean shutdown.

- a config file (``--config``),
- the quick path (``--upstream URL``): one upstream, any client key, one tenant, loopback only,
- the embedded defaults (neither): the local model as upstream, SQLite in the user cache dir.

``serve_app`` runs uvicorn in the caller's event loop and, on SIGINT or SIGTERM (see
``ShutdownSignals``), stops accepting, finishes what it can and *returns*, so the caller's
``finally`` stops what it started (the local model's process group) before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vex_llm.server.limits import ServerLimits
from vex_llm.server.settings import Settings, UpstreamSettings

__all__ = [
    "OPEN_TENANT",
    "ShutdownSignals",
    "default_store_url",
    "quick_settings",
    "run_server",
    "serve_app",
    "uvicorn_config",
]

T = TypeVar("T")

#: The tenant every client of the quick path and the embedded defaults belongs to.
OPEN_TENANT = "local"


def default_store_url() -> str:
    """``sqlite:///<user cache dir>/vex-llm/cache.db`` (the directory is created)."""
    try:
        import platformdirs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vex-llm serve needs the server extra: pip install 'vex-llm[server]'"
        ) from exc
    folder = Path(platformdirs.user_cache_dir("vex-llm"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'cache.db').resolve()}"


def quick_settings(
    *,
    model: str,
    base_url: str,
    kind: str = "openai",
    api_key_env: str | None = None,
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    admin_key_hashes: tuple[bytes, ...] = (),
) -> Settings:
    """Settings for one upstream, open to any client key as tenant ``local`` (loopback only)."""
    upstream = UpstreamSettings(
        name=model, kind=kind, base_url=base_url, model=model, api_key_env=api_key_env
    )
    return Settings(
        upstreams=(upstream,),
        tenants=(),
        open_tenant=OPEN_TENANT,
        admin_key_hashes=admin_key_hashes,
        store_url=store_url,
        host=host,
        port=port,
    )


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vex-llm serve needs the server extra: pip install 'vex-llm[server]'"
        ) from exc
    return uvicorn


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows, or installed without the server extra's uvloop
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_server(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` (the server) to completion on uvloop when it is installed.

    ``serve_app`` runs uvicorn in the caller's loop, so uvicorn's own choice of loop never
    applies: without this the proxy ran on asyncio's pure-Python loop, whose per-callback
    overhead is a large part of a streamed answer (one callback per chunk).
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


class ShutdownSignals:
    """SIGINT and SIGTERM for the whole life of ``vex-llm serve``.

    Before uvicorn runs (installing or starting the local model), a signal cancels the
    start-up, so the caller's ``finally`` still stops what was started; once uvicorn exists,
    it asks for a graceful stop, and a second signal forces it. Installed on the event loop
    (``add_signal_handler``), so the handler runs as ordinary loop code.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.server: Any = None
        self.received = 0
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Handle the signals in the running loop, for the current task."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in self._SIGNALS:
            self._loop.add_signal_handler(sig, self._handle)

    def remove(self) -> None:
        """Give the signals back to their previous handling."""
        if self._loop is not None:
            for sig in self._SIGNALS:
                self._loop.remove_signal_handler(sig)
            self._loop = None

    def _handle(self) -> None:
        self.received += 1
        if self.server is not None:
            if self.received > 1:
                self.server.force_exit = True
            self.server.should_exit = True
        elif self._task is not None:
            self._task.cancel()


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    log_level: str = "info",
    access_log: bool = False,
) -> Any:
    """uvicorn's ``Config`` for the proxy, with the connection limits of ``limits``.

    ``access_log``: uvicorn's line per request (off unless asked: it costs a write to stderr
    per request, a fifth of a cache hit).

    uvicorn gives the keep-alive idle timeout; the header size cap, the header timeout and
    the connection limit come from :mod:`vex_llm.server.protocol` (uvicorn's httptools
    protocol has none of them); the body timeout is a middleware of the app.
    """
    from vex_llm.server.protocol import bounded_protocol

    return _uvicorn().Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        ws="none",
        lifespan="on",
        http=bounded_protocol(limits),
        timeout_keep_alive=limits.keepalive_timeout,
    )


async def serve_app(
    app: Any,
    host: str,
    port: int,
    *,
    signals: ShutdownSignals | None = None,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    sockets: list[socket.socket] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` until asked to stop; return after a graceful stop.

    ``limits`` bound every connection (see :func:`uvicorn_config`). ``sockets``: listen on
    these (already bound and listening) instead of ``host:port``; ``vex-llm serve --workers
    N`` gives each worker its own on one port. ``access_log``: one line per request.

    With ``signals``, SIGINT/SIGTERM stop it; uvicorn's own signal handling is turned off
    either way, because after shutting down it re-raises the signal, which for SIGTERM kills
    the process before the caller can stop its child processes.
    """
    uvicorn = _uvicorn()

    class _Server(uvicorn.Server):  # type: ignore[misc, name-defined]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn_config(
        app, host, port, limits or ServerLimits(), log_level=log_level, access_log=access_log
    )
    server = _Server(config)
    if signals is not None:
        signals.server = server
        if signals.received:
            return
    await server.serve(sockets=sockets)
