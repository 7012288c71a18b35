"""Shared fixtures: a tiny real model, an isolated cache dir, and a real LSP client over stdio."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.tiny_models import build_tiny_model


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CACHE_HOME for every server the tests start (never the user's real cache)."""
    path = tmp_path_factory.mktemp("xdg-cache")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Llama with a BPE tokenizer (FIM tokens) trained offline."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def server_env(cache_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache_home)
    env["XDG_CONFIG_HOME"] = str(cache_home / "config")
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_VERBOSITY"] = "error"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


@pytest.fixture
def tiny_args(tiny_model_dir: Path) -> list[str]:
    return ["--model", str(tiny_model_dir), "--backend", "transformers", "--device", "cpu"]


# -- the Qwen2.5-Coder stand-in (real tokenizer, random weights; see tests/fim_models.py) --------


@pytest.fixture(scope="session")
def qwen_fim_hf() -> Path:
    """HF dir: the chain model (writes ``alpha``, then ``<|file_sep|>``, ...), cached."""
    from tests.fim_models import build_qwen_fim_model, cache_root

    return build_qwen_fim_model(cache_root())


@pytest.fixture(scope="session")
def qwen_fim_gguf(qwen_fim_hf: Path) -> Path:
    """The same model as GGUF (f16) for the llamacpp backend, converted once and cached."""
    from tests.fim_models import build_qwen_fim_gguf, cache_root

    return build_qwen_fim_gguf(qwen_fim_hf, cache_root())
