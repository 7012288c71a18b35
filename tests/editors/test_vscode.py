"""The VS Code extension: it builds, its settings match the server's, and the server
answers the requests the extension sends (driven from Node with the extension's own
protocol packages, since VS Code itself cannot run here).

Node checks need `npm ci` in editor-configs/vscode and tests/editors/vscode_protocol.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_llm.config import Settings, to_camel
from tests.editors.conftest import REPO

VSCODE = REPO / "editor-configs" / "vscode"
PROTOCOL_TEST = Path(__file__).resolve().parent / "vscode_protocol"

# Settings the extension contributes besides the server's own.
CLIENT_ONLY = {"server.command", "server.args", "server.tcp", "trace.server"}
# The server settings the extension exposes (the list).
EXPOSED = {
    "model",
    "backend",
    "device",
    "dtype",
    "maxNewTokens",
    "contextWindow",
    "temperature",
    "debounceMs",
    "numSuggestions",
    "endpoint",
    "apiKeyEnv",
    "docstringStyle",
    "retrieval",
}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    return node


def _need_modules(folder: Path) -> None:
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"run `npm ci` in {folder.relative_to(REPO)} first")


def _manifest() -> dict:
    return json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))


def test_extension_settings_mirror_server_settings() -> None:
    props = _manifest()["contributes"]["configuration"]["properties"]
    names = {key.removeprefix("lspLlm.") for key in props}
    assert names == EXPOSED | CLIENT_ONLY
    fields = {to_camel(f.name): f for f in dataclasses.fields(Settings)}
    for name in EXPOSED:
        assert name in fields, f"lspLlm.{name} is not a server setting"
        default = fields[name].default
        declared = props[f"lspLlm.{name}"]
        assert declared["default"] == default, (name, declared["default"], default)
        if "enum" in declared:
            from typing import get_args, get_type_hints

            hint = get_type_hints(Settings)[fields[name].name]
            assert sorted(declared["enum"]) == sorted(get_args(hint)), name
    # The settings list in src/protocol.ts is the same list.
    protocol_ts = (VSCODE / "src" / "protocol.ts").read_text(encoding="utf-8")
    for name in EXPOSED:
        assert f"'{name}'" in protocol_ts, name


def test_extension_commands_do_not_clash_with_server_commands() -> None:
    # vscode-languageclient registers the server's executeCommand ids ("lspLlm.*") as
    # VS Code commands; the extension's own ids must differ or registration fails.
    commands = [c["command"] for c in _manifest()["contributes"]["commands"]]
    assert len(commands) == 5
    assert all(c.startswith("lsp-llm.") for c in commands)
    titles = {c["title"] for c in _manifest()["contributes"]["commands"]}
    assert titles == {
        "Explain Selection",
        "Generate Docstring",
        "Show Status",
        "Reindex Workspace",
        "Restart Server",
    }


@pytest.mark.slow
def test_extension_typechecks() -> None:
    node = _node()
    _need_modules(VSCODE)
    tsc = VSCODE / "node_modules" / "typescript" / "bin" / "tsc"
    proc = subprocess.run(
        [node, str(tsc), "-p", str(VSCODE), "--noEmit"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_vscode_protocol_session(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    node = _node()
    _need_modules(PROTOCOL_TEST)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".lsp-llm.toml").write_text("# lsp-llm test workspace\n", encoding="utf-8")
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "lsp_llm", "serve", *tiny_args]
    proc = subprocess.run(
        [node, str(PROTOCOL_TEST / "run.js"), str(workspace), str(out), "--", *command],
        cwd=workspace,
        env=server_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), proc.stdout + proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    failed = [c for c in result["checks"] if not c["ok"]]
    assert proc.returncode == 0 and result["ok"], (
        f"{result.get('error')}\nfailed: {json.dumps(failed, indent=1)}\n"
        f"server stderr:\n{result.get('stderr', '')}"
    )
    # The parts the issue names explicitly.
    assert result["inline"], result
    assert result["explain"]["chunks"] >= 1
    assert result["explain"]["final"]["text"].strip()
