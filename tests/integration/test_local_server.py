"""LlamaServer's failure paths and its safety net, with the real binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vex_llm.local import LlamaServer, LlamaServerError

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, gone, cannot reap it; init will).
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


async def test_a_bad_model_fails_with_the_log_tail(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    server = LlamaServer(model_path=bogus)
    with pytest.raises(LlamaServerError, match="exited") as caught:
        await server.start(timeout=30)
    assert "log tail" in str(caught.value)
    assert not server.running


CHILD = """
import asyncio, sys, time
from vex_llm.local import LlamaServer
async def main():
    server = LlamaServer()
    await server.start(timeout=60)
    print(server._process.pid, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def test_a_killed_parent_does_not_leave_the_server_running() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            server_pid = int(parent.stdout.readline())  # pytest-timeout bounds a hang
            assert alive(server_pid)
            parent.send_signal(signal.SIGKILL)  # no finalizer, no atexit: only the kernel helps
            parent.wait()
            for _ in range(100):
                if not alive(server_pid):
                    break
                time.sleep(0.05)
            assert not alive(server_pid)
        finally:
            if parent.poll() is None:
                parent.kill()
