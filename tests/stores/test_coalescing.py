"""Four processes x 250 identical concurrent misses through one shared store: one upstream call.

Each process folds its own 250 into one flight; the store's lease folds the four flights into
one call (the others wait for the entry). Run on SQLite, Redis and a three-node Redis Cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import Cluster, Server

WORKER = str(Path(__file__).with_name("worker.py"))
PROCESSES = 4
REQUESTS = 250


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    if request.param == "redis":
        server: Server = request.getfixturevalue("redis_server")
        return f"{server.url}?prefix=co-{tmp_path.name}:"
    cluster: Cluster = request.getfixturevalue("redis_cluster")
    return f"{cluster.url}?prefix=co-{tmp_path.name}:"


def test_four_processes_of_identical_misses_make_one_upstream_call(store_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "burst", store_url, str(REQUESTS), "1.0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:  # every process has its store open...
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:  # ...then all fire together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(p.communicate(timeout=90)[0]) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["calls"] for r in reports) == 1
    assert [r["contents"] for r in reports] == [["the shared answer"]] * PROCESSES
    assert sum(r["stats"]["misses"] for r in reports) == 1
    assert sum(r["stats"]["coalesced"] for r in reports) == PROCESSES * REQUESTS - 1
