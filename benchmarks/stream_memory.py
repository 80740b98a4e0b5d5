"""What a ``max_bytes`` bound really holds when the cache is full of streamed answers.

Run: ``.venv/bin/python benchmarks/stream_memory.py [--max-mib 32] [--chunks 2000]``. A
``CachedProvider`` with a memory store bounded to ``--max-mib`` is filled, through
``stream()``, with answers of many tiny chunks (3 characters each, every one carrying its
OpenAI ``chat.completion.chunk`` event as ``raw``, as the OpenAI-compatible provider records
them), four times more than the bound can keep. Printed: the store's own byte count, the
process's resident memory growth (RSS), and their ratio to the bound. A recorded stream is
kept encoded (compact JSON bytes), so the growth stays near the bound instead of several
times it as Python objects would.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator

from vex_llm import CachedProvider, Chunk, LLMCacheConfig, LLMProvider, LLMRequest, LLMResponse
from vex_llm.models import OPENAI_CHAT, Usage

MIB = 1024 * 1024


class TinyChunks(LLMProvider):
    """Streams each answer as ``chunks`` pieces of 3 characters, with OpenAI events as raw."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def name(self) -> str:
        return "tiny"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise NotImplementedError("streams only")

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        tag = request.prompt
        for i in range(self.chunks):
            text = f"{i % 1000:03d}"
            event = {
                "id": f"chatcmpl-{tag}",
                "object": "chat.completion.chunk",
                "created": 1_750_000_000,
                "model": "tiny",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": text},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
            yield Chunk(delta=text, model="tiny", raw=json.dumps(event), raw_format=OPENAI_CHAT)
        yield Chunk(finish_reason="stop", usage=Usage(5, self.chunks), model="tiny")


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mib", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=2000)
    args = parser.parse_args()
    bound = args.max_mib * MIB
    config = LLMCacheConfig(max_entries=None, max_bytes=bound, ttl=None, tti=None)
    cached = CachedProvider(TinyChunks(args.chunks), config)
    gc.collect()
    before = rss_bytes()
    answers = 0
    target = 1
    while answers < target:
        async for _ in cached.stream(LLMRequest(prompt=f"q{answers}")):
            pass
        answers += 1
        if answers == 1:  # one entry's size tells how many make four times the bound
            target = -(-4 * bound // (await cached.astats()).bytes)
    gc.collect()
    await asyncio.sleep(0)
    grown = rss_bytes() - before
    stats = await cached.astats()
    print(
        f"memory store bounded to {args.max_mib} MiB, {answers} streamed answers of "
        f"{args.chunks} chunks each (about {4 * args.max_mib} MiB recorded)"
    )
    print(f"{'measure':<34} {'MiB':>8} {'x bound':>8}")
    print(f"{'entries kept':<34} {stats.entries:>8}")
    held = stats.bytes
    print(f"{'store bytes (encoded entries)':<34} {held / MIB:>8.1f} {held / bound:>8.2f}")
    print(f"{'resident memory growth (RSS)':<34} {grown / MIB:>8.1f} {grown / bound:>8.2f}")
    await cached.aclose()


if __name__ == "__main__":
    asyncio.run(main())
