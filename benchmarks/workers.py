"""Proxy hits per second with ``vex-llm serve --workers 1`` and ``--workers 2``, on loopback.

Run: ``.venv/bin/python benchmarks/workers.py [--seconds 5] [--connections 16] [--rounds 2]``
(or ``make bench``). Processes: the fake upstream of ``benchmarks/proxy.py``, the real
``vex-llm serve`` command (quick path; a SQLite store in a temporary folder, or ``--store
URL``: a shared store is what ``--workers`` needs), and ``--clients`` load generators, each
with its share of the keep-alive connections (raw asyncio on uvloop and pre-built requests,
so the clients cost little). Every request is the same cached chat completion (one miss
first, then hits). Rounds alternate 1 and 2 workers; the table shows each round's hits/s.

On a 2-core machine the clients share the cores with the workers, so two workers cannot
double the rate; the figure that matters is whether the second process adds hits/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "bench"
REQUEST_DOC = {"model": MODEL, "messages": [{"role": "user", "content": "a cached question"}]}


def _request() -> bytes:
    body = json.dumps(REQUEST_DOC).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        "content-type: application/json\r\nauthorization: Bearer sk-bench\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), head


async def _load(port: int, connections: int, seconds: float) -> int:
    request = _request()
    deadline = time.perf_counter() + seconds
    done = 0

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < deadline:
            writer.write(request)
            status, head = await _answer(reader)
            if status != 200 or b"x-vex-cache: hit" not in head:
                raise RuntimeError(f"not a hit: {status} {head!r}")
            done += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return done


def _client(port: int, connections: int, seconds: float, start: float, out: object) -> None:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop
    time.sleep(max(0.0, start - time.time()))
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        out.send(runner.run(_load(port, connections, seconds)))  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until one request answers (the first is the miss that fills the cache)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a benchmark process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(_request())
                if s.recv(65536).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {port}")


def _round(workers: int, upstream: int, args: argparse.Namespace, folder: Path) -> float:
    port = _free_port()
    store = args.store or f"sqlite:///{folder / f'cache-{workers}-{port}.db'}"
    command = [
        sys.executable, "-m", "vex_llm", "serve", "--workers", str(workers),
        "--upstream", f"http://127.0.0.1:{upstream}/v1", "--model", MODEL,
        "--store", store, "--port", str(port),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, server)
        for _ in range(50):  # every worker listens once a few hits went through
            _wait_ready(port, server)
        context = multiprocessing.get_context("spawn")
        pipes, clients = [], []
        start = time.time() + 1.0
        for i in range(args.clients):
            share = args.connections // args.clients + (i < args.connections % args.clients)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_client, args=(port, share, args.seconds, start, send))
            process.start()
            pipes.append(receive)
            clients.append(process)
        hits = sum(pipe.recv() for pipe in pipes)
        for process in clients:
            process.join()
        return hits / args.seconds
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (1 worker, 2 workers)")
    parser.add_argument("--store", help="store URL [default: a new SQLite file per round]")
    args = parser.parse_args()
    upstream = _free_port()
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "proxy.py"), "--role", "upstream", "--port", str(upstream)]
    )
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(args.rounds):
                for workers in (1, 2):
                    rates[workers].append(_round(workers, upstream, args, Path(folder)))
    finally:
        fake.terminate()
        fake.wait(10)
    print(
        f"vex-llm serve --workers N, cache hits/s on loopback, {os.cpu_count()} cores, "
        f"{args.connections} connections from {args.clients} client processes, "
        f"{args.seconds:g} s per round"
    )
    print("| workers | hits/s per round | best |")
    print("|---:|---|---:|")
    for workers, values in rates.items():
        cells = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {workers} | {cells} | {max(values):,.0f} |")


if __name__ == "__main__":
    main()
