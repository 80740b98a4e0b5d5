"""HTTP client options for calling an upstream, on loopback, side by side in one run.

Run: ``.venv/bin/python benchmarks/http_clients.py [--rounds 8] [--requests 100]``. The fake
upstream of ``benchmarks/proxy.py`` runs in its own process; this process (on uvloop, as the
proxy runs) sends sequential POSTs of a small chat request over one keep-alive connection
per client and reads the whole answer, JSON and SSE. Clients:

- raw asyncio: pre-built bytes on a socket, the floor;
- httpx's default client; httpx writing each request once (the providers' fallback client,
  ``vex_llm.providers._client``); httpx over our aiohttp transport (``providers._aiohttp``),
  through ``client.stream`` and through ``post_json``, the providers' way (no httpx request or
  response built);
- when installed: ``httpx2``, ``aiohttp`` directly, httpx over aiohttp (``httpx-aiohttp``,
  the transport the openai SDK offers);
- ``OpenAICompatibleProvider.complete()``/``stream()`` on httpx's default client, on the
  one-write client and on the providers' default (httpx over aiohttp, ``post_json``): what a miss
  pays for the upstream call.

Each client answers ``--requests`` calls per round, the rounds alternate clients (the
machine may be shared), and the table shows the median over rounds of each round's median,
and the best round's (the least disturbed by other work).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy as fake  # the fake upstream and raw client of benchmarks/proxy.py
from vex_llm import LLMRequest, OpenAICompatibleProvider
from vex_llm.providers._client import AiohttpClient, default_http_client, one_write_http_client

PATH = "/v1/chat/completions"
Call = Callable[[int, bool], Awaitable[None]]


def _payload(i: int, stream: bool) -> dict[str, object]:
    text = f"question {i} {time.time_ns()}"
    return {"model": fake.MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}


def _httpx_call(client: Any, url: str) -> Call:
    async def call(i: int, stream: bool) -> None:
        async with client.stream("POST", url, json=_payload(i, stream)) as response:
            async for _ in response.aiter_raw():
                pass

    return call


def _fast_call(client: AiohttpClient, url: str) -> Call:
    target = httpx.URL(url)

    async def call(i: int, stream: bool) -> None:
        response = await client.post_json(target, _payload(i, stream), {}, 30.0)
        try:
            async for _ in response.aiter_raw():
                pass
        finally:
            await response.aclose()

    return call


def _provider_call(provider: OpenAICompatibleProvider) -> Call:
    async def call(i: int, stream: bool) -> None:
        request = LLMRequest(prompt=f"question {i} {time.time_ns()}")
        if stream:
            async for _ in provider.stream(request):
                pass
        else:
            await provider.complete(request)

    return call


async def _clients(port: int, closers: list[Callable[[], Awaitable[object]]]) -> dict[str, Call]:
    url = f"http://127.0.0.1:{port}{PATH}"
    reader, writer = await fake._connect(port)

    async def raw(i: int, stream: bool) -> None:
        writer.write(fake._request(PATH, _payload(i, stream), auth=False))
        await fake._read_response(reader)

    async def close_raw() -> None:
        writer.close()

    closers.append(close_raw)
    calls: dict[str, Call] = {"raw asyncio (floor)": raw}
    plain, one_write, ours = httpx.AsyncClient(), one_write_http_client(), default_http_client()
    closers += [plain.aclose, one_write.aclose, ours.aclose]
    calls["httpx, default client"] = _httpx_call(plain, url)
    calls["httpx, one write per request (our fallback)"] = _httpx_call(one_write, url)
    if isinstance(ours, AiohttpClient):  # not when the environment names a proxy
        calls["ours (httpx over our aiohttp transport)"] = _httpx_call(ours, url)
        calls["ours, post_json (the providers' way)"] = _fast_call(ours, url)
    if importlib.util.find_spec("httpx2"):
        import httpx2

        other = httpx2.AsyncClient()
        closers.append(other.aclose)
        calls["httpx2, default client"] = _httpx_call(other, url)
    if importlib.util.find_spec("aiohttp"):
        import aiohttp

        session = aiohttp.ClientSession()
        closers.append(session.close)

        async def aio(i: int, stream: bool) -> None:
            async with session.post(url, json=_payload(i, stream)) as response:
                async for _ in response.content.iter_any():
                    pass

        calls["aiohttp directly"] = aio
        if importlib.util.find_spec("httpx_aiohttp"):
            from httpx_aiohttp import AiohttpTransport

            over = httpx.AsyncClient(transport=AiohttpTransport())
            closers.append(over.aclose)
            calls["httpx over aiohttp (httpx-aiohttp)"] = _httpx_call(over, url)
    base = f"http://127.0.0.1:{port}/v1"
    clients = (
        ("httpx default", httpx.AsyncClient()),
        ("one-write", one_write_http_client()),
        ("our default", None),
    )
    for label, client in clients:
        provider = OpenAICompatibleProvider(base_url=base, model=fake.MODEL, http_client=client)
        closers.append(provider.aclose)
        if client is not None:
            closers.append(client.aclose)
        calls[f"provider on {label} client"] = _provider_call(provider)
    return calls


async def _measure(port: int, rounds: int, requests: int) -> dict[tuple[str, bool], list[float]]:
    closers: list[Callable[[], Awaitable[object]]] = []
    try:
        calls = await _clients(port, closers)
        for call in calls.values():  # warm up: connections open, code paths hot
            for stream in (False, True):
                for i in range(20):
                    await call(i, stream)
        medians: dict[tuple[str, bool], list[float]] = {}
        for _ in range(rounds):
            for stream in (False, True):
                for name, call in calls.items():
                    times = []
                    for i in range(requests):
                        started = time.perf_counter()
                        await call(i, stream)
                        times.append(time.perf_counter() - started)
                    medians.setdefault((name, stream), []).append(statistics.median(times) * 1e3)
        return medians
    finally:
        for close in reversed(closers):
            await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="per client and round")
    args = parser.parse_args()
    port = fake._free_port()
    script = str(Path(fake.__file__).resolve())
    upstream = subprocess.Popen([sys.executable, script, "--role", "upstream", "--port", str(port)])
    try:

        async def run() -> dict[tuple[str, bool], list[float]]:
            await fake._wait_port(port, upstream)
            return await _measure(port, args.rounds, args.requests)

        from vex_llm.server.run import run_server  # uvloop, as the proxy runs

        medians = run_server(run())
    finally:
        upstream.terminate()
        upstream.wait(10)
    names = list(dict.fromkeys(name for name, _ in medians))
    width = max(map(len, names))
    print(f"sequential POSTs on loopback: median of {args.rounds} rounds x {args.requests} calls")
    print(f"{'client':<{width}}  {'JSON p50 ms (best)':>18}  {'SSE p50 ms (best)':>18}")
    for name in names:
        cells = []
        for stream in (False, True):
            rounds = medians[(name, stream)]
            cells.append(f"{statistics.median(rounds):.3f} ({min(rounds):.3f})")
        print(f"{name:<{width}}  {cells[0]:>18}  {cells[1]:>18}")


if __name__ == "__main__":
    main()
