"""Concrete providers: the mock for tests, and the HTTP backends (OpenAI-compatible, Ollama,
Anthropic)."""

from vex_llm.providers.anthropic import AnthropicProvider
from vex_llm.providers.mock import MockProvider
from vex_llm.providers.ollama import OllamaProvider
from vex_llm.providers.openai_compat import OpenAICompatibleProvider

__all__ = ["AnthropicProvider", "MockProvider", "OllamaProvider", "OpenAICompatibleProvider"]
