"""``GatedWrites``: a memory store whose writes wait for a gate, to hold a flight open after
its answer (a test sees what happens between an answer and its store write)."""

from __future__ import annotations

import asyncio

from vex_llm import MemoryStore
from vex_llm.cache.entry import CacheEntry


class GatedWrites(MemoryStore):
    """A memory store whose writes wait for ``gate``; ``writing`` is set once one waits."""

    def __init__(self, max_entries: int = 10, max_bytes: int | None = None) -> None:
        super().__init__(max_entries, max_bytes)
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        self.writing.set()
        await self.gate.wait()
        return await super().set(key, entry, ttl, tti)
