"""The upstream kinds: one table that the proxy settings, the CLI and the provider factory read.

Each kind names a wire format and the provider class that speaks it. Adding a backend is one
row here (and its class); the config file's validation, ``vex-llm serve --upstream-kind`` and
``build_upstream`` all follow. Provider classes are imported when a provider is built, so
reading the table costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vex_llm.provider import LLMProvider

__all__ = ["KIND_NAMES", "UPSTREAM_KINDS", "UpstreamKind", "build_upstream", "upstream_kind"]


@dataclass(frozen=True, slots=True)
class UpstreamKind:
    """One kind of upstream: its ``name``, what it is, whether it ``needs_key`` (and whether it
    ``takes_key`` at all), and the provider class (``module:Class``) that speaks it."""

    name: str
    description: str
    provider: str
    needs_key: bool = False
    takes_key: bool = True

    def build(
        self, *, base_url: str, model: str, api_key: str | None, timeout: float
    ) -> LLMProvider:
        """The provider for one upstream of this kind."""
        if self.needs_key and api_key is None:
            raise ValueError(f"a {self.name} upstream needs an API key")
        module, _, cls_name = self.provider.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        options: dict[str, object] = {"base_url": base_url, "model": model, "timeout": timeout}
        if self.takes_key:
            options["api_key"] = api_key
        provider: LLMProvider = cls(**options)
        return provider


UPSTREAM_KINDS: Mapping[str, UpstreamKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            UpstreamKind(
                "openai",
                "any OpenAI-compatible /v1/chat/completions server",
                "vex_llm.providers.openai_compat:OpenAICompatibleProvider",
            ),
            UpstreamKind(
                "ollama",
                "Ollama's native /api/chat",
                "vex_llm.providers.ollama:OllamaProvider",
                takes_key=False,
            ),
            UpstreamKind(
                "anthropic",
                "Anthropic's /v1/messages",
                "vex_llm.providers.anthropic:AnthropicProvider",
                needs_key=True,
            ),
        )
    }
)

#: The kind names, in the table's order (for choices and messages).
KIND_NAMES: tuple[str, ...] = tuple(UPSTREAM_KINDS)


def upstream_kind(name: str) -> UpstreamKind:
    """The kind called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return UPSTREAM_KINDS[name]
    except KeyError:
        raise ValueError(
            f"unknown upstream kind {name!r}; known: {', '.join(KIND_NAMES)}"
        ) from None


def build_upstream(
    kind: str, *, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0
) -> LLMProvider:
    """The provider for an upstream of ``kind`` (see :data:`UPSTREAM_KINDS`)."""
    return upstream_kind(kind).build(
        base_url=base_url, model=model, api_key=api_key, timeout=timeout
    )
