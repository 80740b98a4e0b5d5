"""Concrete providers: the mock for tests, the HTTP backends (OpenAI-compatible, Ollama,
Anthropic), and ``HTTPProvider``, the base to build another HTTP backend on."""

from vex_llm.providers.anthropic import AnthropicProvider
from vex_llm.providers.base import AnswerLimits, HTTPProvider
from vex_llm.providers.mock import MockProvider
from vex_llm.providers.ollama import OllamaProvider
from vex_llm.providers.openai_compat import OpenAICompatibleProvider

__all__ = [
    "AnswerLimits",
    "AnthropicProvider",
    "HTTPProvider",
    "MockProvider",
    "OllamaProvider",
    "OpenAICompatibleProvider",
]
