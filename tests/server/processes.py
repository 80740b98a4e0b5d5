"""Running ``vex-llm`` as a real child process in tests, and stopping it the way users do."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def vex_llm(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m vex_llm ARGS`` to completion: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vex_llm", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Served:
    """A running ``vex-llm serve``: its base URL, process, and stderr so far."""

    def __init__(self, process: asyncio.subprocess.Process, base: str) -> None:
        self.process = process
        self.base = base
        self.stderr = ""

    async def wait_for_stderr(self, text: str) -> None:
        """Read stderr line by line until a line holds ``text`` (kept in ``stderr``; at most
        30 s)."""
        assert self.process.stderr is not None
        async with asyncio.timeout(30):
            while text not in self.stderr:
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError(f"stderr ended without {text!r}: {self.stderr}")
                self.stderr += line.decode()

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit code (at most 30 s)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        _, err = await asyncio.wait_for(self.process.communicate(), 30)
        self.stderr += err.decode()
        assert self.process.returncode is not None
        return self.process.returncode


@asynccontextmanager
async def serving(*args: str, ready_timeout: float = 30) -> AsyncIterator[Served]:
    """``vex-llm serve ARGS --port P``, yielded once ``/healthz`` answers; stopped after."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vex_llm", "serve", *args, "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(ready_timeout):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"vex-llm serve exited with {process.returncode}")
                try:
                    if (await client.get(f"{served.base}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        yield served
    finally:
        if process.returncode is None:
            await served.stop()
