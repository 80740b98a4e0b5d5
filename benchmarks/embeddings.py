"""Embeddings through the proxy: batches of 100 inputs at 0%, 50%, 90% and 100% cached.

Run: ``.venv/bin/python benchmarks/embeddings.py`` (the local model must be installed:
``python -m vex_llm.local.install``). Three processes on loopback:

- the upstream: the real local embeddings server (``llama-server --embeddings --pooling mean``
  with SmolLM2-135M, as the embedded default runs it), or with ``--fake`` a fake OpenAI
  upstream that costs 2 ms plus 0.3 ms per input;
- the proxy: ``vex-llm serve --upstream ...`` with a SQLite store (the embedded default's
  kind; a memory store sized below the whole run would evict or refuse entries), as a user
  runs it;
- this process, the client (httpx).

For each cached share, each round embeds 100 fresh inputs: first straight from the upstream
(the baseline), then the share's inputs are put in the cache (one warming call, not timed),
then all 100, shuffled, through the proxy. It prints the median latency of both, and how
many inputs the proxy sent upstream (it sends only the missing ones, in one call). The
machine may be shared: figures are noisy, ratios matter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MODEL = "smollm2-135m"
SHARES = (0.0, 0.5, 0.9, 1.0)
BATCH = 100


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(command: list[str], *, quiet: bool = False) -> subprocess.Popen[bytes]:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(command, stdout=out, stderr=out, env={**os.environ, "NO_COLOR": "1"})


async def _wait_up(url: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _fake_upstream_code(port: int) -> str:
    return f"""
import asyncio, json, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def embed(request):
    body = await request.json()
    items = body["input"]
    await asyncio.sleep(0.002 + 0.0003 * len(items))
    vector = [0.001 * i for i in range(576)]
    if body.get("encoding_format") == "base64":
        import base64, struct
        vector = base64.b64encode(struct.pack("<576f", *vector)).decode()
    data = [{{"object": "embedding", "index": i, "embedding": vector}}
            for i in range(len(items))]
    tokens = sum(len(t) // 4 + 1 for t in items)
    return JSONResponse({{"object": "list", "data": data, "model": "{MODEL}",
                         "usage": {{"prompt_tokens": tokens, "total_tokens": tokens}}}})

async def health(request):
    return JSONResponse({{"status": "ok"}})

app = Starlette(routes=[Route("/v1/embeddings", embed, methods=["POST"]),
                        Route("/health", health)])
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def _texts(tag: str) -> list[str]:
    return [
        f"{tag} passage {i}: a response cache keeps each input's vector, so a batch "
        f"that repeats most of its inputs sends only the new ones ({i * 7919 % 1000})."
        for i in range(BATCH)
    ]


async def _embed(client: httpx.AsyncClient, url: str, texts: list[str]) -> httpx.Response:
    response = await client.post(
        url,
        # base64: what the openai SDKs ask for unless told otherwise.
        json={"model": MODEL, "input": texts, "encoding_format": "base64"},
        headers={"authorization": "Bearer bench"},
        timeout=300,
    )
    response.raise_for_status()
    return response


async def _measure(upstream: str, proxy: str, rounds: int) -> list[tuple[float, ...]]:
    rows = []
    async with httpx.AsyncClient() as client:
        # One call each way first: connections, and the server's first-call costs.
        await _embed(client, f"{upstream}/embeddings", _texts("warm-up"))
        await _embed(client, f"{proxy}/embeddings", _texts("warm-up"))
        for share in SHARES:
            direct, through, sent = [], [], []
            for r in range(rounds):
                texts = _texts(f"share {share} round {r}")
                started = time.perf_counter()
                await _embed(client, f"{upstream}/embeddings", texts)
                direct.append(time.perf_counter() - started)
                cached = int(share * BATCH)
                if cached:
                    await _embed(client, f"{proxy}/embeddings", texts[:cached])
                random.shuffle(texts)
                started = time.perf_counter()
                answer = await _embed(client, f"{proxy}/embeddings", texts)
                through.append(time.perf_counter() - started)
                sent.append(BATCH - int(answer.headers["x-vex-cache-hits"]))
                assert len(answer.json()["data"]) == BATCH
            rows.append(
                (
                    share,
                    statistics.median(direct) * 1000,
                    statistics.median(through) * 1000,
                    statistics.median(sent),
                )
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="batches per share")
    parser.add_argument("--fake", action="store_true", help="a fake upstream, not the model")
    args = parser.parse_args()
    children: list[subprocess.Popen[bytes]] = []
    server = None
    try:
        if args.fake:
            port = _free_port()
            children.append(_spawn([sys.executable, "-c", _fake_upstream_code(port)]))
            root = f"http://127.0.0.1:{port}"
            what = "fake upstream (2 ms + 0.3 ms per input)"
        else:
            from vex_llm.local.llama import LlamaServer

            server = LlamaServer(alias=MODEL, embeddings=True)
            await server.start(timeout=120)
            root = server.root_url
            what = "llama-server --embeddings --pooling mean, SmolLM2-135M (576 dims)"
        await _wait_up(f"{root}/health")
        proxy_port = _free_port()
        store = f"sqlite:///{tempfile.mkdtemp(prefix='vex-bench-')}/cache.db"
        vex = Path(sys.executable).with_name("vex-llm")
        command = [str(vex), "serve", "--upstream", f"{root}/v1", "--model", MODEL,
                   "--store", store, "--port", str(proxy_port)]  # fmt: skip
        children.append(_spawn(command, quiet=True))
        proxy = f"http://127.0.0.1:{proxy_port}"
        await _wait_up(f"{proxy}/healthz")
        rows = await _measure(f"{root}/v1", f"{proxy}/v1", args.rounds)
    finally:
        for child in children:
            child.terminate()
            child.wait()
        if server is not None:
            await server.stop()
    print(f"upstream: {what}; {BATCH} inputs a batch, median of {args.rounds} batches")
    print()
    print("| cached | direct to upstream | through the proxy | inputs sent upstream | speed-up |")
    print("|-------:|-------------------:|------------------:|---------------------:|---------:|")
    for share, direct, through, sent in rows:
        print(
            f"| {share:>5.0%} | {direct:>15.1f} ms | {through:>14.1f} ms | "
            f"{sent:>20.0f} | {direct / through:>7.1f}x |"
        )
    print()
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    asyncio.run(main())
