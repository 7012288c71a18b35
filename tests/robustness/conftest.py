"""Fixtures for the robustness suite, and the ``stress`` marker.

Stress tests (100k-file trees and the like) are deselected unless ``LSP_LLM_STRESS=1``::

    LSP_LLM_STRESS=1 .venv/bin/python -m pytest tests/robustness -m stress -q
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.robustness.raw import RawServer

STRESS_ENV = "LSP_LLM_STRESS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"stress: long robustness runs (minutes); deselected unless {STRESS_ENV}=1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(STRESS_ENV) == "1":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if item.get_closest_marker("stress") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


SECRET_MARKER = "SECRET_7f3a9c_DO_NOT_LEAK"


def make_workspace(root: Path) -> Path:
    """A small workspace with the awkward files an editor meets: secrets, binaries, non-UTF-8
    text, a minified one-line bundle."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(
        "import os\n\nAPI_KEY = os.environ['API_KEY']\n\n\ndef connect(url):\n    return url\n"
    )
    (root / "util.py").write_text("def helper(x):\n    return x * 2\n")
    (root / ".env").write_text(f"API_KEY={SECRET_MARKER}\n")
    (root / "secrets.json").write_text(f'{{"API_KEY": "{SECRET_MARKER}"}}\n')
    (root / "id_rsa").write_text(f"-----BEGIN KEY-----\n{SECRET_MARKER}\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 64)
    (root / "latin1.py").write_bytes("# caf\xe9 na\xefve\nx = 'd\xe9j\xe0'\n".encode("latin-1"))
    (root / "broken.py").write_bytes(b"def f():\n    return '\xff\xfe\xc3('\n")
    (root / "bundle.min.js").write_text(
        "".join(f"var a{i}=function(b){{return b+{i}}};" for i in range(20000))
    )
    return root


@pytest.fixture(scope="session")
def debug_env(server_env: dict[str, str]) -> dict[str, str]:
    return {**server_env, "LSP_LLM_DEBUG": "1"}


@pytest.fixture(scope="session")
def tiny_server(
    tiny_model_dir: Path, debug_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RawServer]:
    """One tiny-model server over a raw pipe shared by the robustness tests (a start costs
    ~20 s of CPU). Indexing on, ``-v`` logging captured, debug requests enabled. Tests leave it
    idle and with ``maxNewTokens`` 8."""
    base = tmp_path_factory.mktemp("shared-server")
    root = make_workspace(base / "ws")
    server = RawServer(
        ["--model", str(tiny_model_dir), "--backend", "transformers", "--device", "cpu", "-v"],
        debug_env,
        root,
        stderr_path=base / "stderr.log",
    )
    try:
        reply = server.initialize(root, {"maxNewTokens": 8})
        assert "result" in reply, reply
        st = server.wait_state()
        assert st["state"] == "ready", st
        yield server
    finally:
        server.close()


@pytest.fixture
def srv(tiny_server: RawServer) -> Iterator[RawServer]:
    """The shared server, checked idle before and after each test."""
    tiny_server.wait_idle(10)
    yield tiny_server
    tiny_server.configure(maxNewTokens=8)
    tiny_server.wait_idle(10)
    assert tiny_server.proc.poll() is None, "the server died"


def broken_model_args(tmp: Path) -> list[str]:
    """A server that starts in ~2 s: its model cannot load (protocol tests need no model)."""
    return ["--model", str(tmp / "no-such-model"), "--backend", "transformers", "--no-index"]
