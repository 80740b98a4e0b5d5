"""Kept for the imports written before ``HTTPProvider`` became public: see ``providers.base``."""

from vex_llm.providers.base import AnswerLimits, HTTPProvider, Secret

__all__ = ["AnswerLimits", "HTTPProvider", "Secret"]
