"""One table of upstream kinds, read by the settings, the CLI and the provider factory."""

from __future__ import annotations

import click
import pytest

from vex_llm.providers import AnthropicProvider, OllamaProvider, OpenAICompatibleProvider
from vex_llm.providers.kinds import KIND_NAMES, UPSTREAM_KINDS, build_upstream, upstream_kind
from vex_llm.server import settings
from vex_llm.server.settings import UpstreamSettings
from vex_llm.server.upstreams import build_provider

CLASSES = {
    "openai": OpenAICompatibleProvider,
    "ollama": OllamaProvider,
    "anthropic": AnthropicProvider,
}


def test_every_reader_uses_the_one_table() -> None:
    from vex_llm.cli import serve

    assert KIND_NAMES == tuple(UPSTREAM_KINDS) == tuple(CLASSES)
    assert settings.UPSTREAM_KINDS == KIND_NAMES
    option = next(p for p in serve.params if p.name == "upstream_kind")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == KIND_NAMES


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_each_kind_builds_its_provider_with_the_timeout(kind: str) -> None:
    provider = build_upstream(
        kind, base_url="http://127.0.0.1:9/v1", model="m", api_key="k" * 20, timeout=7.5
    )
    assert type(provider) is CLASSES[kind]
    assert provider.timeout == 7.5  # type: ignore[attr-defined]
    await provider.aclose()


def test_a_kind_that_needs_a_key_refuses_to_build_without() -> None:
    assert upstream_kind("anthropic").needs_key
    with pytest.raises(ValueError, match="anthropic upstream needs an API key"):
        build_upstream("anthropic", base_url="https://a.example", model="m")
    upstream = UpstreamSettings("claude", "anthropic", "https://a.example", "m")
    with pytest.raises(ValueError, match=r"'claude'.*needs an API key"):
        build_provider(upstream, env={})


def test_unknown_kinds_name_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: openai, ollama, anthropic"):
        upstream_kind("gemini")
