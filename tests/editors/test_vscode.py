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
    assert len(commands) == 7
    assert all(c.startswith("lsp-llm.") for c in commands)
    titles = {c["title"] for c in _manifest()["contributes"]["commands"]}
    assert titles == {
        "Explain Selection",
        "Generate Docstring",
        "Show Status",
        "Reindex Workspace",
        "Restart Server",
        "Accept Next Word of the Suggestion",
        "Accept Next Line of the Suggestion",
    }


def test_partial_accept_commands_are_bound_and_registered() -> None:
    # Ctrl+Right (Cmd+Right) accepts the next word through the extension, like VS Code's own
    # binding but reporting the accepted text; the extension registers its commands.
    manifest = _manifest()
    bindings = {b["command"]: b for b in manifest["contributes"]["keybindings"]}
    word = bindings["lsp-llm.acceptNextWord"]
    assert (word["key"], word["mac"]) == ("ctrl+right", "cmd+right")
    assert "inlineSuggestionVisible" in word["when"]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (VSCODE / "src").glob("*.ts"))
    for constant, command in (
        ("ACCEPT_NEXT_WORD_COMMAND", "lsp-llm.acceptNextWord"),
        ("ACCEPT_NEXT_LINE_COMMAND", "lsp-llm.acceptNextLine"),
        ("INLINE_ACCEPTED_COMMAND", "lsp-llm.inlineAccepted"),
    ):
        assert f"{constant} = '{command}'" in source, command
        assert f"registerCommand({constant}," in source, command
    assert "'lspLlm/didShow'" in source


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


def test_manifest_settings_work_in_remote_windows_and_bundle() -> None:
    manifest = _manifest()
    props = manifest["contributes"]["configuration"]["properties"]
    # `machine` / `machine-overridable` settings are not read from User settings in a
    # remote window (Remote-SSH, WSL, code-server): the server settings must not be.
    for key in ("lspLlm.server.command", "lspLlm.server.args", "lspLlm.server.tcp"):
        assert props[key].get("scope") not in ("machine", "machine-overridable"), key
    restricted = manifest["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    assert {"lspLlm.server.command", "lspLlm.server.args", "lspLlm.server.tcp"} <= set(restricted)
    assert props["lspLlm.server.command"]["default"] == ""  # "" = discover it
    assert manifest["main"] == "./dist/extension.js"
    assert (
        (VSCODE / "LICENSE")
        .read_text(encoding="utf-8")
        .startswith("\n                                 Apache License")
    )
    assert "--bundle" in manifest["scripts"]["bundle"]
    assert "--no-dependencies" in manifest["scripts"]["package"]


DISCOVERY_CHECK = r"""
const fs = require('fs'), path = require('path');
const { findServer } = require(process.argv[2]);
const { levelTracker } = require(process.argv[3]);
const root = process.argv[4];
const exe = (p) => {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, '#!/bin/sh\n');
  fs.chmodSync(p, 0o755);
};
const ws = path.join(root, 'ws'), pathDir = path.join(root, 'bin');
exe(path.join(pathDir, 'lsp-llm'));
const env = { platform: 'linux', pathEnv: pathDir };
const out = {};
out.pathOnly = findServer('', [ws], env);
exe(path.join(ws, '.venv', 'bin', 'lsp-llm'));
out.venv = findServer('', [ws], env);
out.setting = findServer(path.join(pathDir, 'lsp-llm'), [ws], env);
out.settingName = findServer('lsp-llm', [ws], env);
out.missingSetting = findServer('/nowhere/lsp-llm', [ws], env);
out.nothing = findServer('', [path.join(root, 'empty')], { platform: 'linux', pathEnv: '' });
const level = levelTracker();
out.levels = [
  '12:00:01 WARNING pygls.protocol: Cancel notification for unknown message id 7',
  '12:00:02 INFO lsp_llm.engine: model ready',
  '12:00:03 DEBUG lsp_llm.server: x',
  '12:00:04 ERROR lsp_llm.engine: load failed',
  'Traceback (most recent call last):',
  '12:00:05 CRITICAL lsp_llm: boom',
].map(level);
console.log(JSON.stringify(out));
"""


@pytest.mark.slow
def test_server_discovery_and_log_levels(tmp_path: Path) -> None:
    """Configured command, then the workspace's venv, then PATH; stderr lines at their level."""
    node = _node()
    _need_modules(VSCODE)
    esbuild = VSCODE / "node_modules" / ".bin" / "esbuild"
    built = {}
    for name in ("discover", "serverlog"):
        target = tmp_path / f"{name}.js"
        subprocess.run(
            [
                str(esbuild),
                str(VSCODE / "src" / f"{name}.ts"),
                "--bundle",
                "--platform=node",
                "--format=cjs",
                f"--outfile={target}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        built[name] = str(target)
    script = tmp_path / "check.js"
    script.write_text(DISCOVERY_CHECK, encoding="utf-8")
    proc = subprocess.run(
        [node, str(script), built["discover"], built["serverlog"], str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["pathOnly"] == {"command": str(tmp_path / "bin" / "lsp-llm"), "source": "PATH"}
    assert out["venv"] == {
        "command": str(tmp_path / "ws" / ".venv" / "bin" / "lsp-llm"),
        "source": "workspace venv",
    }
    assert out["setting"]["source"] == out["settingName"]["source"] == "setting"
    for key in ("missingSetting", "nothing"):
        message = out[key]["message"]
        assert "pip install lsp-llm" in message and "User settings" in message, message
    assert "/nowhere/lsp-llm" in out["missingSetting"]["message"]
    assert out["levels"] == ["warn", "info", "debug", "error", "error", "error"]
