"""Store latency and throughput: get (hit) and set, for every store, 1 KB and 32 KB values.

Run: ``.venv/bin/python benchmarks/stores.py`` (or ``make bench``). It starts its own
``redis-server`` (and ``valkey-server`` if installed) on a free loopback port, without
persistence, and a fresh SQLite file in a temporary folder. For each store and value size it
times ``await store.set(...)`` for N distinct keys, then ``await store.get(...)`` of each
(all hits), first in one process, then in two processes at once against the same file or
server (the memory store is per process, so it has no two-process row). Latencies are per
call (median and p99, µs); ops/s is all calls of all processes over the wall time of the
slowest. The figures are noisy on a shared 2-core machine: compare ratios, not absolutes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vex_llm.cache.entry import CacheEntry, encode_entry
from vex_llm.cache.stores import CacheStore, MemoryStore, open_store
from vex_llm.models import LLMResponse, Usage

SIZES = {"1 KB": 1024, "32 KB": 32 * 1024}
CALLS = {"1 KB": 2000, "32 KB": 500}


def make_entry(size: int) -> CacheEntry:
    """An entry whose encoded size is about ``size`` bytes."""
    raw = CacheEntry(LLMResponse("x" * (size - 120), "bench", Usage(10, 200)), time.time())
    return CacheEntry(raw.response, raw.stored_at, len(encode_entry(raw)))


def open_bench_store(url: str) -> CacheStore:
    if url == "memory://":
        return MemoryStore(max_entries=100_000)
    return open_store(url, max_entries=100_000)


async def run(url: str, size: int, calls: int, tag: str, start_at: float) -> dict[str, Any]:
    """Time ``calls`` sets then ``calls`` get-hits; return the per-call latencies (s)."""
    store = open_bench_store(url)
    entry = make_entry(size)
    keys = [f"{tag}-{size}-{i}" for i in range(calls)]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    result: dict[str, Any] = {}
    for op in ("set", "get"):
        latencies = []
        began = time.perf_counter()
        for key in keys:
            t0 = time.perf_counter()
            if op == "set":
                await store.set(key, entry, None, None)
            elif await store.get(key) is None:
                raise RuntimeError(f"{url}: expected a hit for {key}")
            latencies.append(time.perf_counter() - t0)
        result[op] = {"lat": latencies, "wall": time.perf_counter() - began}
    await store.aclose()
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(binary: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0?prefix=bench:"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{binary} did not start")


def summarize(results: list[dict[str, Any]], op: str) -> tuple[float, float, float]:
    """(median µs, p99 µs, ops/s) over every process's calls."""
    latencies = sorted(x for r in results for x in r[op]["lat"])
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    wall = max(r[op]["wall"] for r in results)
    return statistics.median(latencies) * 1e6, p99 * 1e6, len(latencies) / wall


def two_processes(url: str, size: int, calls: int) -> list[dict[str, Any]]:
    start_at = time.time() + 1.5  # both start together, after their imports
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                url,
                str(size),
                str(calls),
                f"p{i}",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    return [json.loads(p.communicate(timeout=300)[0]) for p in procs]


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        url, size, calls, tag, start_at = sys.argv[2:7]
        print(json.dumps(asyncio.run(run(url, int(size), int(calls), tag, float(start_at)))))
        return
    servers: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="vex-bench-"))
    stores = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/bench.db"}
    try:
        for name in ("redis-server", "valkey-server"):
            binary = shutil.which(name) or shutil.which(name, path="/usr/bin")
            if binary:
                proc, url = start_server(binary)
                servers.append(proc)
                stores[name.removesuffix("-server")] = url
        header = (
            f"{'store':<8} {'value':>6} {'procs':>5} | {'get p50':>8} {'get p99':>8} "
            f"{'get ops/s':>10} | {'set p50':>8} {'set p99':>8} {'set ops/s':>10}"
        )
        print(header)
        print("-" * len(header))
        for store, url in stores.items():
            for label, size in SIZES.items():
                calls = CALLS[label]
                rows = [(1, [asyncio.run(run(url, size, calls, "solo", 0.0))])]
                if store != "memory":
                    rows.append((2, two_processes(url, size, calls)))
                for procs, results in rows:
                    g50, g99, gops = summarize(results, "get")
                    s50, s99, sops = summarize(results, "set")
                    print(
                        f"{store:<8} {label:>6} {procs:>5} | {g50:>8.1f} {g99:>8.1f} "
                        f"{gops:>10,.0f} | {s50:>8.1f} {s99:>8.1f} {sops:>10,.0f}"
                    )
        print("latencies in µs per call; ops/s summed over processes")
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
