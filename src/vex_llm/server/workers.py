"""``vex-llm serve --workers N``: N processes serving one port, under one supervisor.

The supervisor (the process the user started) reserves the port, starts the managed local
model once when it is the upstream, and spawns N workers. Each worker binds its own listening
socket to the port with ``SO_REUSEPORT`` (the kernel spreads new connections across them)
and runs the ordinary app. Workers share:

- the cache, through the store: SQLite or Redis (``memory://`` is refused with N > 1 by the
  settings' checks: each worker would keep its own cache);
- the local model: one ``llama-server``, started by the supervisor, reached by every worker
  under the local model's fixed cache identity;
- the metrics: prometheus-client's multiprocess mode, in a private directory the
  supervisor makes and removes, so ``/metrics`` on any worker adds up all of them.

Stopping: the terminal's Ctrl-C reaches only the supervisor (workers run in their own
process group), which sends each worker one SIGTERM (uvicorn's graceful drain), waits, kills
what is still running after ``grace`` seconds (a second Ctrl-C: at once), and then stops the
local model. A worker whose supervisor died is signalled by Linux (``PR_SET_PDEATHSIG``) and
stops too. A worker that dies while serving is replaced (if its replacement fails to start,
the server stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from typing import Any

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider
from vex_llm.server.settings import Settings

__all__ = ["AttachedLocalModel", "Supervisor", "WorkerSpec", "reserve_port"]


class AttachedLocalModel(LLMProvider):
    """The local model's server started by another process, under the local model's identity.

    Name and cache identity are :class:`~vex_llm.local.provider.LocalModelProvider`'s, so a
    worker's cached answers are the ones a single-process server stores and finds.
    """

    def __init__(self, base_url: str, embeddings_url: str | None = None) -> None:
        from vex_llm.local.provider import LOCAL_MODEL, LocalModelProvider
        from vex_llm.providers.openai_compat import OpenAICompatibleProvider

        self._identity = LocalModelProvider(progress=lambda _line: None)
        self._inner = OpenAICompatibleProvider(base_url=base_url, model=LOCAL_MODEL)
        self._embedder = (
            None
            if embeddings_url is None
            else OpenAICompatibleProvider(base_url=embeddings_url, model=LOCAL_MODEL)
        )

    def name(self) -> str:
        """``local:smollm2-135m``, as the provider that started the server."""
        return self._identity.name()

    def cache_identity(self) -> tuple[str, ...]:
        """The local model's fixed identity (not the server's per-run URL)."""
        return self._identity.cache_identity()

    async def is_available(self) -> bool:
        """True while the shared server answers its health check."""
        return await self._inner.is_available()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The shared local model's answer."""
        return await self._inner.complete(request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The shared local model's streamed answer."""
        async for chunk in self._inner.stream(request):
            yield chunk

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The shared local embeddings server's vectors."""
        if self._embedder is None:
            return await super().embed(request)
        return await self._embedder.embed(request)

    async def aclose(self) -> None:
        """Close this worker's connections; the servers belong to the supervisor."""
        await self._inner.aclose()
        if self._embedder is not None:
            await self._embedder.aclose()


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs: the settings (with the real port) and the shared parts."""

    settings: Settings
    local_base_url: str | None = None
    local_embeddings_url: str | None = None
    #: ``time.monotonic()`` when the shared metrics began (machine-wide on Linux): the start
    #: of every worker's ``last_hour`` window until it has older snapshots of its own.
    counters_since: float | None = None


def _listener(host: str, port: int, *, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the listener
    # says TCP (without it, Nagle and delayed ACKs add 40 ms to responses).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) ``host:port`` with ``SO_REUSEPORT``; port 0 picks a free one.

    The bound socket keeps the port for the workers' own sockets and takes no connections.
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
        raise OSError("--workers needs SO_REUSEPORT (Linux, macOS, BSD)")
    return _listener(host, port, listen=False)


def _worker_main(spec: WorkerSpec, ready: Connection) -> None:  # pragma: no cover - a child
    """A worker process: its own process group, dies with the supervisor, serves until told."""
    os.setpgrp()
    _die_with_parent()
    from vex_llm.server.run import run_server

    run_server(_serve_worker(spec, ready))


def _die_with_parent() -> None:  # pragma: no cover - runs in a worker
    import ctypes
    import sys

    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the supervisor died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


async def _serve_worker(spec: WorkerSpec, ready: Connection) -> None:  # pragma: no cover
    from vex_llm.server.app import create_app
    from vex_llm.server.run import ShutdownSignals, serve_app

    settings = spec.settings
    providers: dict[str, LLMProvider] | None = None
    if spec.local_base_url is not None:
        providers = {
            u.name: AttachedLocalModel(spec.local_base_url, spec.local_embeddings_url)
            for u in settings.upstreams
        }
    signals = ShutdownSignals()
    signals.install()
    try:
        app = create_app(settings, providers=providers, counters_since=spec.counters_since)
        sock = _listener(settings.host, settings.port, listen=True)
        ready.send(os.getpid())
        ready.close()
        await serve_app(
            app,
            settings.host,
            settings.port,
            signals=signals,
            limits=settings.limits,
            sockets=[sock],
            access_log=settings.access_log,
        )
    finally:
        signals.remove()


class Supervisor:
    """Starts, watches and stops the worker processes of one ``vex-llm serve --workers N``.

    Use :meth:`run` from the supervisor's event loop; it returns the exit code.
    ``announce`` is called once every worker listens, with the settings (real port).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        local_base_url: str | None = None,
        local_embeddings_url: str | None = None,
        grace: float = 30.0,
        start_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.local_base_url = local_base_url
        self.local_embeddings_url = local_embeddings_url
        self.grace = grace
        self.start_timeout = start_timeout
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._context = multiprocessing.get_context("spawn")
        self._stop: asyncio.Event | None = None
        self._signals = 0

    def _on_signal(self) -> None:
        self._signals += 1
        assert self._stop is not None
        self._stop.set()
        if self._signals > 1:  # a second Ctrl-C: no more waiting
            for process in self.processes:
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGKILL)

    async def run(self, announce: Callable[[Settings], None]) -> int:
        """Serve with ``settings.workers`` workers until a signal; 0 on a clean stop."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        reserved = reserve_port(self.settings.host, self.settings.port)
        metrics_dir = tempfile.mkdtemp(prefix="vex-llm-metrics-")
        counters_since = time.monotonic()
        previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the workers
        try:
            port = reserved.getsockname()[1]
            spec = WorkerSpec(
                dataclasses.replace(self.settings, port=port),
                self.local_base_url,
                self.local_embeddings_url,
                counters_since,
            )
            try:
                await self._start_all(spec)
            except _StartFailed as exc:
                await self._stop_all()
                raise OSError(str(exc)) from None
            if self._stop.is_set():
                await self._stop_all()
                return 0
            announce(spec.settings)
            await self._watch(spec)
            await self._stop_all()
            return 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            reserved.close()
            if previous is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
            shutil.rmtree(metrics_dir, ignore_errors=True)

    async def _start_one(self, spec: WorkerSpec) -> multiprocessing.process.BaseProcess:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main, args=(spec, send), name="vex-llm-worker", daemon=False
        )
        process.start()
        send.close()
        self.processes.append(process)
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def on_ready() -> None:
            if not started.done():
                try:
                    started.set_result(receive.recv())
                except (EOFError, OSError):  # the worker died before it listened
                    started.set_exception(_StartFailed(_died(process)))

        loop.add_reader(receive.fileno(), on_ready)
        try:
            async with asyncio.timeout(self.start_timeout):
                await started
        except TimeoutError:
            raise _StartFailed(f"a worker did not start within {self.start_timeout:g} s") from None
        finally:
            loop.remove_reader(receive.fileno())
            receive.close()
        return process

    async def _start_all(self, spec: WorkerSpec) -> None:
        assert self._stop is not None
        for _ in range(self.settings.workers):
            if self._stop.is_set():
                return
            await self._start_one(spec)

    async def _watch(self, spec: WorkerSpec) -> None:
        """Wait for a signal; replace a worker that dies.

        A replacement must report ready like the first workers; one that dies before (the app
        cannot start any more) stops the whole server, so a broken app cannot crash-loop.
        """
        assert self._stop is not None
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                died = asyncio.ensure_future(_any_exit(self.processes))
                await asyncio.wait({stopping, died}, return_when=asyncio.FIRST_COMPLETED)
                died.cancel()
                # Let it remove its readers now, not after the next waiter added its own.
                with contextlib.suppress(asyncio.CancelledError):
                    await died
                for process in [p for p in self.processes if not p.is_alive()]:
                    self.processes.remove(process)
                    if self._stop.is_set():
                        break
                    try:
                        await self._start_one(spec)
                    except _StartFailed as exc:
                        raise OSError(f"{_died(process)}; its replacement failed: {exc}") from None
        finally:
            stopping.cancel()

    async def _stop_all(self) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds, then SIGKILL the rest."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace):
                while alive := [p for p in self.processes if p.is_alive()]:
                    await _any_exit(alive)
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.join, 5)
            process.close()
        self.processes.clear()


async def _any_exit(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Return once any of ``processes`` has exited (their sentinels become readable)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    fds = [p.sentinel for p in processes]

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    for fd in fds:
        loop.add_reader(fd, on_exit)
    try:
        await exited
    finally:
        for fd in fds:
            loop.remove_reader(fd)


class _StartFailed(Exception):
    pass


def _died(process: Any) -> str:
    process.join(1)
    return f"worker {process.pid} exited with {process.exitcode}"
