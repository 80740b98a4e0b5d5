"""Streams fold across processes like JSON: N processes streaming one request, one upstream call;
a leader killed mid-stream hands over to a follower, and nothing broken is stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from vex_llm import CachedProvider, open_store

from .servers import Server
from .worker import STREAM_REQUEST, SlowStream

WORKER = str(Path(__file__).with_name("worker.py"))


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    server: Server = request.getfixturevalue("redis_server")
    return f"{server.url}?prefix=mps-{tmp_path.name}:"


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def expect(proc: subprocess.Popen[str], line: str) -> None:
    stdout: IO[str] | None = proc.stdout
    assert stdout is not None
    got = stdout.readline().strip()
    assert got == line, f"expected {line!r} from the worker, got {got!r}"


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_streaming_one_request_make_one_upstream_call(
    shared_url: str, processes: int
) -> None:
    procs = [spawn("streams", shared_url, "5", "6", "0.05") for _ in range(processes)]
    for proc in procs:  # every store is open...
        expect(proc, "ready")
    for proc in procs:  # ...then all start together
        go(proc)
    reports = [report(p) for p in procs]
    assert sum(r["calls"] for r in reports) == 1
    assert all(r["texts"] == ["w0 w1 w2 w3 w4 w5 "] for r in reports)
    outcomes: dict[str, int] = {}
    for r in reports:
        for outcome, n in r["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    assert outcomes.get("miss") == 1
    # A process scheduled late may find the answer already stored: a hit, still no call.
    assert set(outcomes) <= {"miss", "coalesced", "hit"}
    assert sum(outcomes.values()) == 5 * processes
    assert sum(r["stats"]["misses"] for r in reports) == 1


async def test_a_leader_killed_mid_stream_hands_over_and_nothing_broken_is_stored(
    shared_url: str,
) -> None:
    leader = spawn("stream-one", shared_url, "40", "0.1")  # ~4 s of stream
    follower = spawn("stream-one", shared_url, "3", "0.01")
    try:
        expect(leader, "ready")
        expect(follower, "ready")
        go(leader)
        expect(leader, "streaming")  # it holds the lease, mid-stream
        go(follower)
        expect(follower, "waiting")  # it saw the leader's lease and waits for it
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        result = report(follower)
    finally:
        for proc in (leader, follower):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
    # The follower took over once the dead leader's lease ran out: its own call, whole answer.
    assert result == {"calls": 1, "outcome": "miss", "text": "w0 w1 w2 "}
    # The one entry is the follower's whole stream, never the killed leader's partial one.
    store = open_store(shared_url)
    try:
        assert await store.count() == 1
        key = CachedProvider(SlowStream(1, 0), store=store).key_for(STREAM_REQUEST)
        entry = await store.get(key)
        assert entry is not None
        assert entry.chunks is not None
        assert entry.response.content == "w0 w1 w2 "
        assert entry.chunks[-1].is_final
    finally:
        await store.aclose()
