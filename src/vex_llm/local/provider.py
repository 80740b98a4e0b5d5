"""``LocalModelProvider``: the embedded upstream, the real local model run by vex-llm itself.

It starts llama.cpp's ``llama-server`` with SmolLM2-135M-Instruct as a managed child process
(installing it first, with progress, when it is missing) and talks to it as an
OpenAI-compatible upstream. Its cache identity is fixed: the server listens on a new port each
run, and yesterday's cached answers must still hit today. The server starts on first use or on
:meth:`start`, and stops (with its whole process group) on :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from vex_llm.models import Chunk, LLMRequest, LLMResponse
from vex_llm.provider import LLMProvider

__all__ = ["LOCAL_MODEL", "LocalModelProvider"]

#: The model name the embedded upstream is served under.
LOCAL_MODEL = "smollm2-135m"


class LocalModelProvider(LLMProvider):
    """The local SmolLM2 model behind ``llama-server``, started and stopped by this provider.

    ``progress`` receives human-readable lines while installing and starting;
    ``start_timeout`` bounds the server's start-up (seconds).
    """

    def __init__(
        self, progress: Callable[[str], None] = print, *, start_timeout: float = 120.0
    ) -> None:
        self.progress = progress
        self.start_timeout = start_timeout
        self._server: Any = None
        self._provider: LLMProvider | None = None
        self._lock: asyncio.Lock | None = None

    def name(self) -> str:
        """``local:smollm2-135m``."""
        return f"local:{LOCAL_MODEL}"

    def cache_identity(self) -> tuple[str, ...]:
        """Fixed across runs: the engine, the model alias and the weights file."""
        from vex_llm.local.install import MODEL_FILE

        return ("llama.cpp", LOCAL_MODEL, MODEL_FILE)

    @property
    def base_url(self) -> str | None:
        """The running server's OpenAI-style URL, or None before it started."""
        return None if self._server is None else str(self._server.base_url)

    async def start(self) -> None:
        """Install if needed, start the server and wait until it is healthy. Idempotent."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._provider is not None:
                return
            from vex_llm.local.install import ensure_installed, is_installed
            from vex_llm.local.llama import LlamaServer
            from vex_llm.providers.openai_compat import OpenAICompatibleProvider

            if not is_installed():
                self.progress("first run: installing the local model (this takes minutes once)")
                await asyncio.to_thread(ensure_installed, self.progress)
            server = LlamaServer(alias=LOCAL_MODEL)
            self.progress("starting llama-server with SmolLM2-135M-Instruct ...")
            await server.start(timeout=self.start_timeout)
            self._server = server
            self._provider = OpenAICompatibleProvider(base_url=server.base_url, model=LOCAL_MODEL)
            self.progress(f"local model ready at {server.base_url}")

    async def _inner(self) -> LLMProvider:
        if self._provider is None:
            await self.start()
        assert self._provider is not None
        return self._provider

    async def is_available(self) -> bool:
        """True while the server runs and answers its health check."""
        return self._provider is not None and await self._provider.is_available()

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The local model's answer (starting the server first if needed)."""
        return await (await self._inner()).complete(request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The local model's streamed answer (starting the server first if needed)."""
        async for chunk in (await self._inner()).stream(request):
            yield chunk

    async def aclose(self) -> None:
        """Stop the server and its process group. Idempotent."""
        provider, server = self._provider, self._server
        self._provider = self._server = None
        try:
            if provider is not None:
                await provider.aclose()
        finally:
            if server is not None:
                await server.stop()
