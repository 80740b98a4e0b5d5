"""Several OS processes on one SQLite file or one Redis: shared entries, one upstream call."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vex_llm.cache.entry import decode_entry
from vex_llm.cache.stores import SQLiteStore

from .servers import Server

WORKER = str(Path(__file__).with_name("worker.py"))


def run_worker(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, WORKER, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    server: Server = request.getfixturevalue("redis_server")
    return f"{server.url}?prefix=mp-{tmp_path.name}:"


def test_one_process_writes_the_other_hits(shared_url: str) -> None:
    first = run_worker("once", shared_url, "hello")
    second = run_worker("once", shared_url, "hello")
    assert (first["outcome"], first["calls"]) == ("miss", 1)
    assert (second["outcome"], second["calls"]) == ("hit", 0)


def test_fifty_identical_misses_over_two_processes_make_one_call(shared_url: str) -> None:
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(  # closed (pipes, process) however the test ends
                    [sys.executable, WORKER, "burst", shared_url, "25", "0.5"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(2)
        ]
        stack.callback(lambda: [p.kill() for p in procs if p.poll() is None])
        for proc in procs:  # both have their store open...
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:  # ...then both fire together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["calls"] for r in reports) == 1
    assert [r["contents"] for r in reports] == [["the shared answer"]] * 2
    # One process made the call; every other request, here or there, counts as coalesced.
    assert sum(r["stats"]["misses"] for r in reports) == 1
    assert sum(r["stats"]["coalesced"] for r in reports) == 49
    assert sum(r["outcomes"].get("coalesced", 0) for r in reports) == 49


def test_kill_9_mid_write_leaves_a_whole_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, WORKER, "writer", f"sqlite:///{path}", "20000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    confirmed = []
    for line in proc.stdout:  # each line: a set() that returned
        confirmed.append(line.strip())
        if len(confirmed) >= 150:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(conn.execute("SELECT key, value FROM entries").fetchall())
    conn.close()
    # Everything confirmed before the kill is there, and every row decodes whole.
    assert set(confirmed) <= set(rows)
    for key, value in rows.items():
        content = decode_entry(value).response.content
        n = key.removeprefix("key-")
        assert content.startswith(f"entry {n} ")
        assert content.endswith(f" end {n}")
    store = SQLiteStore(path)
    try:
        assert store.count_now() == len(rows)
    finally:
        store.close()
