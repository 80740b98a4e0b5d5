"""Proxy latency and throughput on loopback, each side in its own process.

Run: ``.venv/bin/python benchmarks/proxy.py`` (or ``make bench``). Three processes:

- a fast fake upstream (raw asyncio, a canned OpenAI answer, JSON or SSE),
- the proxy (``create_app`` with a memory store under uvicorn, as ``vex-llm serve`` runs it),
- this process, the client: raw asyncio keep-alive connections with pre-built requests, so
  the client's own cost stays far below what it measures.

It prints, for non-streaming and streaming requests: hit latency p50/p99 (one connection,
sequential), hit requests/s (``--connections`` concurrent connections), and the added latency
of a miss: the same unique-prompt requests sent through the proxy and straight to the
upstream, and the same upstream called through ``OpenAICompatibleProvider`` alone (which
splits that overhead into the HTTP client's share and the proxy's own), in ``--rounds``
alternating rounds; the overhead is the median over rounds of the difference of the round's
medians. Targets on 2 cores: hit p50 <= 1 ms (issue 12: 0.4), p99 <= 5 ms, miss overhead
<= 1 ms. The machine may be shared: figures are noisy, ratios matter.

``--limits`` measures the rate-limit check instead: hit latency through four proxies in the
same run, in interleaved rounds (so a noisy neighbour hurts them alike): a memory store with
limits off and on (in-process counting; target: on within 0.2 ms of off), and a Redis store
(a ``redis-server`` the benchmark starts) with limits off and on (counted in Redis: what
sharing the limits across processes costs), and with a requests limit only. The limits are
requests and tokens per minute, too high to refuse anything: a hit then takes a request,
reserves tokens and gives them back (with requests only: takes a request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "bench"
KEY = "sk-bench"
ANSWER = "A response cache stores answers so that repeated questions cost nothing."


# -- the fake upstream -----------------------------------------------------------------------


def _upstream_reply(stream: bool) -> bytes:
    usage = {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26}
    if not stream:
        body = json.dumps(
            {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ANSWER},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        ).encode()
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body
    events = []
    words = ANSWER.split(" ")
    for i, word in enumerate(words):
        delta = {"content": word + (" " if i < len(words) - 1 else "")}
        events.append({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage})
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    sse += b"data: [DONE]\n\n"
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(sse)}"
    return head.encode() + b"\r\n\r\n" + sse


async def _run_upstream(port: int) -> None:
    replies = {False: _upstream_reply(False), True: _upstream_reply(True)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                writer.write(replies[b'"stream":true' in body.replace(b" ", b"")])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# -- the proxy -------------------------------------------------------------------------------


async def _run_proxy(port: int, upstream_port: int, store_url: str = "", limits: str = "") -> None:
    from vex_llm import MemoryStore
    from vex_llm.cache.stores.base import CacheStore
    from vex_llm.cache.stores.url import open_store
    from vex_llm.providers.openai_compat import OpenAICompatibleProvider
    from vex_llm.quota import TenantQuota
    from vex_llm.server.app import create_app
    from vex_llm.server.run import serve_app
    from vex_llm.server.settings import Settings, TenantSettings, UpstreamSettings, hash_key

    base = f"http://127.0.0.1:{upstream_port}/v1"
    # Limits too high to refuse anything: the cost of the check alone.
    quota = None
    if limits:
        tokens = 10**12 if limits == "all" else None
        quota = TenantQuota(requests_per_minute=10**9, tokens_per_minute=tokens)
    settings = Settings(
        upstreams=(UpstreamSettings(MODEL, "openai", base, MODEL),),
        tenants=(TenantSettings("bench", (hash_key(KEY),), quota),),
    )
    provider = OpenAICompatibleProvider(base_url=base, model=MODEL)
    store: CacheStore = (
        open_store(store_url) if store_url else MemoryStore(100_000, 512 * 1024 * 1024)
    )
    app = create_app(settings, {MODEL: provider}, store)
    await serve_app(app, "127.0.0.1", port, log_level="warning")


# -- the client ------------------------------------------------------------------------------


def _request(path: str, doc: dict[str, object], auth: bool = True) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if auth:
        head += f"authorization: Bearer {KEY}\r\n"
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        return status, head, b"".join(parts)
    length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
    return status, head, await reader.readexactly(length)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


#: An agent's request: two tools with schemas, a system prompt, a previous tool turn.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


def _doc(text: str, stream: bool, tools: bool = False) -> dict[str, object]:
    doc: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }
    if tools:
        doc["tools"] = TOOLS
        doc["tool_choice"] = "auto"
        doc["messages"] = [
            {"role": "system", "content": "You are a weather agent."},
            {"role": "user", "content": text},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "4C, rain"},
        ]
    return doc


async def _sequential(port: int, path: str, requests: list[bytes], expect: bytes) -> list[float]:
    reader, writer = await _connect(port)
    times = []
    for request in requests:
        started = time.perf_counter()
        writer.write(request)
        status, head, body = await _read_response(reader)
        times.append(time.perf_counter() - started)
        if status != 200 or expect not in head + body:
            raise RuntimeError(f"unexpected answer {status}: {head!r} {body[:200]!r}")
    writer.close()
    return times


async def _throughput(port: int, request: bytes, connections: int, seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def worker(i: int) -> None:
        reader, writer = await _connect(port)
        while time.perf_counter() < deadline:
            writer.write(request)
            status, _, _ = await _read_response(reader)
            if status != 200:
                raise RuntimeError(f"status {status}")
            counts[i] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)


async def _provider_alone(provider: Any, stream: bool, n: int) -> list[float]:
    """The upstream called through ``OpenAICompatibleProvider`` in this process, no proxy."""
    from vex_llm import LLMRequest

    times = []
    for i in range(n):
        request = LLMRequest(prompt=f"alone-{stream}-{i}-{time.time_ns()}")
        started = time.perf_counter()
        if stream:
            async for _ in provider.stream(request):
                pass
        else:
            await provider.complete(request)
        times.append(time.perf_counter() - started)
    return times


def _median(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _measure(args: argparse.Namespace, proxy: int, upstream: int) -> list[list[str]]:
    rows = []
    path = "/v1/chat/completions"
    for stream in (False, True):
        kind = "stream" if stream else "json"
        tools_hit = _request(path, _doc("Weather in Oslo?", stream, tools=True))
        await _sequential(proxy, path, [tools_hit] * 2, b"")  # store it
        await _sequential(proxy, path, [tools_hit] * 200, b"x-vex-cache: hit")
        times = await _sequential(proxy, path, [tools_hit] * args.requests, b"x-vex-cache: hit")
        rows.append(
            [
                f"hit with tools ({kind})",
                f"{_ms(times, 0.5):.3f}",
                f"{_ms(times, 0.99):.3f}",
                "",
                "1 ms / 5 ms",
            ]
        )
        hit = _request(path, _doc("What does a response cache do?", stream))
        expect = b"x-vex-cache: hit"
        await _sequential(proxy, path, [hit] * 2, b"")  # store it
        await _sequential(proxy, path, [hit] * 200, expect)  # warm up
        times = await _sequential(proxy, path, [hit] * args.requests, expect)
        rps = await _throughput(proxy, hit, args.connections, args.seconds)
        rows.append(
            [
                f"hit ({kind})",
                f"{_ms(times, 0.5):.3f}",
                f"{_ms(times, 0.99):.3f}",
                f"{rps:,.0f}",
                "1 ms / 5 ms",
            ]
        )

        rows += await _misses(args, proxy, upstream, stream)
    return rows


async def _measure_limits(args: argparse.Namespace, proxies: dict[str, int]) -> list[list[str]]:
    """Hit latency through each proxy, in interleaved rounds; the limits' cost per store."""
    path = "/v1/chat/completions"
    hit = _request(path, _doc("What does a response cache do?", False))
    expect = b"x-ratelimit-remaining-requests"
    times: dict[str, list[float]] = {name: [] for name in proxies}
    for port in proxies.values():
        await _sequential(port, path, [hit] * 2, b"")  # store it
        await _sequential(port, path, [hit] * 300, b"x-vex-cache: hit")  # warm up
    rounds = 10
    for _ in range(rounds):
        for name, port in proxies.items():
            check = expect if "limits on" in name else b"x-vex-cache: hit"
            times[name] += await _sequential(port, path, [hit] * (args.requests // rounds), check)
    rows = []
    for name, values in times.items():
        rows.append([f"hit, {name}", f"{_ms(values, 0.5):.3f}", f"{_ms(values, 0.99):.3f}", ""])
    for store in ("memory", "redis"):
        off = times.get(f"{store} store, limits off")
        for suffix in ("", " (requests only)"):
            on = times.get(f"{store} store, limits on{suffix}")
            if on and off:
                target = "0.2 ms (in-process)" if store == "memory" else "reported"
                added = _ms(on, 0.5) - _ms(off, 0.5)
                name = f"limits' cost{suffix}, {store} store (p50 on - off)"
                rows.append([name, f"{added:.3f}", "", target])
    return rows


def _redis_server(port: int) -> subprocess.Popen[bytes] | None:
    import shutil

    binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
    if binary is None:
        print("redis-server not found (scripts/install-redis.sh): the Redis rows are skipped")
        return None
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def _limits_main(args: argparse.Namespace, script: str, env: dict[str, str]) -> None:
    upstream_port, redis_port = _free_port(), _free_port()
    children = [
        subprocess.Popen(
            [sys.executable, script, "--role", "upstream", "--port", str(upstream_port)], env=env
        )
    ]
    redis = _redis_server(redis_port)
    setups = {"memory store, limits off": ("", ""), "memory store, limits on": ("", "all")}
    if redis is not None:
        children.append(redis)
        url = f"redis://127.0.0.1:{redis_port}/0"
        setups["redis store, limits off"] = (url, "")
        setups["redis store, limits on"] = (url, "all")
        setups["redis store, limits on (requests only)"] = (url, "requests")
    ports = {name: _free_port() for name in setups}
    proxies = {}
    for name, (store, limits) in setups.items():
        command = [sys.executable, script, "--role", "proxy", "--port", str(ports[name])]
        command += ["--upstream-port", str(upstream_port), "--store", store]
        command += ["--limits", limits] if limits else []
        proxies[name] = subprocess.Popen(command, env=env)
    children += proxies.values()
    try:

        async def run() -> list[list[str]]:
            await _wait_port(upstream_port, children[0])
            for name, port in ports.items():
                await _wait_port(port, proxies[name])
            return await _measure_limits(args, ports)

        rows = asyncio.run(run())
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
    _print_table(
        f"rate-limit check on loopback, {os.cpu_count()} cores, {args.requests} hits each",
        ["", "p50 ms", "p99 ms", "target"],
        rows,
    )


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(title)
    for row in [header, *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


async def _misses(
    args: argparse.Namespace, proxy: int, upstream: int, stream: bool
) -> list[list[str]]:
    """The added latency of a miss: unique requests sent straight to the upstream, through
    the proxy, and through the provider alone, in alternating rounds (a noisy neighbour
    then hurts all three alike); each figure is the median over rounds of a round's median,
    the overheads are per-round differences."""
    from vex_llm.providers.openai_compat import OpenAICompatibleProvider

    path = "/v1/chat/completions"
    kind = "stream" if stream else "json"
    per = max(10, args.misses // args.rounds)
    base = f"http://127.0.0.1:{upstream}/v1"
    up: list[list[float]] = []
    via: list[list[float]] = []
    alone: list[list[float]] = []
    async with OpenAICompatibleProvider(base_url=base, model=MODEL) as provider:
        warm = [_request(path, _doc(f"w{i}{kind}{time.time_ns()}", stream)) for i in range(50)]
        await _sequential(proxy, path, warm, b"")
        await _provider_alone(provider, stream, 50)
        for r in range(args.rounds):
            prefix = f"miss-{kind}-{r}-{time.time_ns()}"
            direct = [
                _request(path, _doc(f"{prefix}-d{i}", stream), auth=False) for i in range(per)
            ]
            proxied = [_request(path, _doc(f"{prefix}-p{i}", stream)) for i in range(per)]
            up.append(await _sequential(upstream, path, direct, b""))
            via.append(await _sequential(proxy, path, proxied, b"x-vex-cache: miss"))
            alone.append(await _provider_alone(provider, stream, per))

    def p50(rounds: list[list[float]]) -> float:
        return statistics.median(_median(times) for times in rounds)

    def p99(rounds: list[list[float]]) -> float:
        return _ms([t for times in rounds for t in times], 0.99)

    overhead = statistics.median(_median(v) - _median(u) for v, u in zip(via, up, strict=True))
    own = statistics.median(_median(v) - _median(a) for v, a in zip(via, alone, strict=True))
    return [
        [f"miss ({kind}) via proxy", f"{p50(via):.3f}", f"{p99(via):.3f}", "", ""],
        [f"upstream direct ({kind})", f"{p50(up):.3f}", f"{p99(up):.3f}", "", ""],
        [f"provider alone ({kind})", f"{p50(alone):.3f}", f"{p99(alone):.3f}", "", ""],
        [f"miss overhead ({kind})", f"{overhead:.3f}", "", "", "1 ms"],
        [f"  of which the proxy's own ({kind})", f"{own:.3f}", "", "", ""],
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"a benchmark process exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="sequential hits per row")
    parser.add_argument("--misses", type=int, default=1000, help="sequential misses per row")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of misses")
    parser.add_argument("--connections", type=int, default=16, help="for requests/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="for requests/s")
    parser.add_argument("--role", choices=["client", "upstream", "proxy"], default="client")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream-port", type=int, default=0)
    parser.add_argument("--store", default="", help="proxy role: a store URL (default memory)")
    parser.add_argument(
        "--limits",
        nargs="?",
        const="all",
        default="",
        help="measure the rate-limit check (see the docstring); proxy role: all | requests",
    )
    args = parser.parse_args()
    if args.role == "upstream":
        asyncio.run(_run_upstream(args.port))
        return
    if args.role == "proxy":
        from vex_llm.server.run import run_server  # the event loop `vex-llm serve` runs on

        run_server(_run_proxy(args.port, args.upstream_port, args.store, args.limits))
        return

    script = str(Path(__file__).resolve())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.limits:
        _limits_main(args, script, env)
        return
    upstream_port, proxy_port = _free_port(), _free_port()
    children = [
        subprocess.Popen(
            [sys.executable, script, "--role", "upstream", "--port", str(upstream_port)], env=env
        ),
        subprocess.Popen(
            [
                sys.executable,
                script,
                "--role",
                "proxy",
                "--port",
                str(proxy_port),
                "--upstream-port",
                str(upstream_port),
            ],
            env=env,
        ),
    ]
    try:

        async def run() -> list[list[str]]:
            await _wait_port(upstream_port, children[0])
            await _wait_port(proxy_port, children[1])
            return await _measure(args, proxy_port, upstream_port)

        rows = asyncio.run(run())
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
    header = ["", "p50 ms", "p99 ms", "req/s", "target (p50 / p99)"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"proxy on loopback, {os.cpu_count()} cores, {args.connections} connections for req/s")
    for row in [header, *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
