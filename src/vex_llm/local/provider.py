"""``LocalModelProvider``: the embedded upstream, the real local model run by vex-llm itself.

It starts llama.cpp's ``llama-server`` with SmolLM2-135M-Instruct as a managed child process
(installing it first, with progress, when it is missing) and talks to it as an
OpenAI-compatible upstream. Embeddings come from a second ``llama-server`` of the same model
started with ``--embeddings --pooling mean`` on its own port (one server cannot serve both well:
embedding mode needs its own pooling and batch sizes). Its cache identity is fixed: the servers
listen on new ports each run, and yesterday's cached answers must still hit today. Both servers
start together on first use or on :meth:`start`, are health-checked together, and stop (each
with its whole process group) on :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from vex_llm.embeddings import EmbeddingRequest, EmbeddingResponse
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
        self._embed_server: Any = None
        self._provider: LLMProvider | None = None
        self._embedder: LLMProvider | None = None
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

    @property
    def embeddings_base_url(self) -> str | None:
        """The embeddings server's OpenAI-style URL, or None before it started."""
        return None if self._embed_server is None else str(self._embed_server.base_url)

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
            embedder = LlamaServer(alias=LOCAL_MODEL, embeddings=True)
            self.progress("starting llama-server with SmolLM2-135M-Instruct (chat, embeddings) ...")
            started = await asyncio.gather(
                server.start(timeout=self.start_timeout),
                embedder.start(timeout=self.start_timeout),
                return_exceptions=True,
            )
            failed = next((r for r in started if isinstance(r, BaseException)), None)
            if failed is not None:
                await asyncio.gather(server.stop(), embedder.stop())
                raise failed
            self._server, self._embed_server = server, embedder
            self._provider = OpenAICompatibleProvider(base_url=server.base_url, model=LOCAL_MODEL)
            self._embedder = OpenAICompatibleProvider(
                base_url=embedder.base_url, model=LOCAL_MODEL, label="local-embeddings"
            )
            self.progress(
                f"local model ready at {server.base_url} (embeddings: {embedder.base_url})"
            )

    async def _inner(self) -> LLMProvider:
        if self._provider is None:
            await self.start()
        assert self._provider is not None
        return self._provider

    async def is_available(self) -> bool:
        """True while both servers run and answer their health checks."""
        return (
            self._provider is not None
            and self._embedder is not None
            and await self._provider.is_available()
            and await self._embedder.is_available()
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The local model's answer (starting the server first if needed)."""
        return await (await self._inner()).complete(request)

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        """The local model's streamed answer (starting the server first if needed)."""
        async for chunk in (await self._inner()).stream(request):
            yield chunk

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The local model's embeddings (mean-pooled, normalised; starting the servers first
        if needed). ``dimensions`` other than the model's own (576) is refused."""
        await self._inner()
        assert self._embedder is not None
        return await self._embedder.embed(request)

    async def aclose(self) -> None:
        """Stop both servers and their process groups. Idempotent."""
        providers = (self._provider, self._embedder)
        servers = (self._server, self._embed_server)
        self._provider = self._embedder = self._server = self._embed_server = None
        try:
            for provider in providers:
                if provider is not None:
                    await provider.aclose()
        finally:
            for server in servers:
                if server is not None:
                    await server.stop()
