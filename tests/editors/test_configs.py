"""Static checks of the editor snippets, and the Neovim plugin loading without a server."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from lsp_llm.config import Settings, to_camel
from tests.editors.conftest import NVIM_INIT, NVIM_PLUGIN, REPO

CONFIGS = REPO / "editor-configs"
SERVER_SETTINGS = {to_camel(f.name) for f in dataclasses.fields(Settings)}


def test_nvim_readme_embeds_the_tested_init_verbatim() -> None:
    readme = (NVIM_PLUGIN / "README.md").read_text(encoding="utf-8")
    init = NVIM_INIT.read_text(encoding="utf-8").rstrip()
    assert f"```lua\n{init}\n```" in readme


def test_helix_languages_toml() -> None:
    data = tomllib.loads((CONFIGS / "helix" / "languages.toml").read_text(encoding="utf-8"))
    server = data["language-server"]["lsp-llm"]
    assert server["command"] == "lsp-llm"
    assert server["args"] == ["serve"]
    assert set(server["config"]) <= SERVER_SETTINGS
    assert all("lsp-llm" in lang["language-servers"] for lang in data["language"])


def _strip_json_comments(text: str) -> str:
    # Sublime settings allow // comments; none of our strings contain "//".
    return re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)


def test_sublime_settings() -> None:
    text = (CONFIGS / "sublime" / "LSP.sublime-settings").read_text(encoding="utf-8")
    client = json.loads(_strip_json_comments(text))["clients"]["lsp-llm"]
    assert client["command"] == ["lsp-llm", "serve"]
    assert set(client["initializationOptions"]) <= SERVER_SETTINGS
    assert set(client["settings"]["lspLlm"]) <= SERVER_SETTINGS


def test_emacs_snippet_parens_balance() -> None:
    text = (CONFIGS / "emacs" / "lsp-llm.el").read_text(encoding="utf-8")
    depth = 0
    in_string = escaped = comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == ";":
            comment = True
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            assert depth >= 0
    assert depth == 0 and not in_string


def test_nvim_plugin_loads_and_registers(nvim_bin: str, tmp_path: Path) -> None:
    """The example init registers the server config and the commands (no server started)."""
    out = tmp_path / "out.json"
    lua = (
        "local c = vim.lsp.config.lsp_llm; "
        "local f = io.open(vim.env.OUT, 'w'); f:write(vim.json.encode({"
        " cmd = c.cmd, settings = c.settings, init_options = c.init_options,"
        " enabled = vim.lsp.is_enabled('lsp_llm'),"
        " commands = vim.tbl_keys(vim.api.nvim_get_commands({})),"
        " has_progress_handler = c.handlers['$/progress'] ~= nil,"
        " has_status_handler = c.handlers['lspLlm/statusChanged'] ~= nil,"
        "})); f:close()"
    )
    subprocess.run(
        [nvim_bin, "--headless", "--clean", "-u", str(NVIM_INIT), "-c", f"lua {lua}", "-c", "qa!"],
        env={
            "OUT": str(out),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_STATE_HOME": str(tmp_path / "state"),
        },
        check=True,
        timeout=60,
        capture_output=True,
    )
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["cmd"] == ["lsp-llm", "serve"]
    assert result["settings"] == {"lspLlm": {"docstringStyle": "google"}}
    assert result["init_options"] == {"docstringStyle": "google"}
    assert result["enabled"]
    assert {"LspLlmExplain", "LspLlmDocstring", "LspLlmStatus", "LspLlmReindex"} <= set(
        result["commands"]
    )
    assert result["has_progress_handler"] and result["has_status_handler"]
