"""Concrete providers: the mock for tests, and (with their modules) the HTTP backends."""

from vex_llm.providers.mock import MockProvider

__all__ = ["MockProvider"]
