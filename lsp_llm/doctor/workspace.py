"""The user's side: settings files, the workspace index, editor configurations."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsp_llm.config import WORKSPACE_CONFIG_NAME, Settings
from lsp_llm.config import user_config_path as default_user_config_path
from lsp_llm.doctor.report import Check
from lsp_llm.doctor.system import human_size


def check_index(cwd: Path) -> Check:
    from lsp_llm.context.index import find_root
    from lsp_llm.context.store import IndexStore

    root = find_root(cwd)
    store = IndexStore(root)
    data: dict[str, Any] = {"root": str(root), "index_path": str(store.path)}
    if not store.path.exists():
        data["state"] = "missing"
        return Check(
            name="index",
            ok=True,
            informational=True,
            detail=f"{root} is not indexed yet (no {store.path})",
            fix=f"The server indexes it when an editor opens it; or run `lsp-llm index {root}`.",
            data=data,
        )
    t0 = time.perf_counter()
    entries = store.load()
    load_s = time.perf_counter() - t0
    data["state"] = store.status
    if store.status != "loaded":
        return Check(
            name="index",
            ok=False,
            required=False,
            detail=f"the index of {root} is {store.status} ({store.path})",
            fix="It is rebuilt automatically; to do it now run "
            f"`lsp-llm index {root}` (or delete {store.path}).",
            data=data,
        )
    text = [e for e in entries.values() if not e.binary]
    symbols = sum(len(e.symbols) for e in text)
    size = sum(e.size for e in text)
    try:
        saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(store.path.stat().st_mtime))
    except OSError:
        saved = "?"
    data.update(
        files=len(text),
        skipped=len(entries) - len(text),
        symbols=symbols,
        bytes=size,
        index_bytes=store.path.stat().st_size if store.path.exists() else None,
        saved=saved,
        load_s=round(load_s, 4),
    )
    return Check(
        name="index",
        ok=True,
        informational=True,
        detail=f"{root}: {len(text)} files, {symbols} symbols ({human_size(size)} of text), "
        f"saved {saved}, loads in {load_s * 1000:.0f} ms ({store.path})",
        data=data,
    )


def check_config(
    config_file: Path | None, cwd: Path, settings: Settings, warnings: list[str]
) -> Check:
    user = config_file or default_user_config_path()
    workspace = cwd / WORKSPACE_CONFIG_NAME
    found = [str(p) for p in (user, workspace) if p.is_file()]
    data: dict[str, Any] = {
        "user_config": str(user),
        "user_config_exists": user.is_file(),
        "workspace_config": str(workspace),
        "workspace_config_exists": workspace.is_file(),
        "warnings": warnings,
        "non_default": {
            k: v for k, v in settings.to_wire().items() if v != Settings().to_wire().get(k)
        },
    }
    detail = "files: " + (", ".join(found) if found else f"none (user file would be {user})")
    if data["non_default"]:
        detail += "; set: " + ", ".join(f"{k}={v!r}" for k, v in data["non_default"].items())
    problems = list(warnings)
    if config_file is not None and not config_file.is_file():
        problems.insert(0, f"--config {config_file} does not exist")
    if problems:
        return Check(
            name="config",
            ok=False,
            required=False,
            detail=detail + "; warnings: " + "; ".join(problems),
            fix="Fix or remove the settings named above (keys are camelCase or snake_case; see "
            "the README's configuration table). Ignored settings keep their previous value.",
            data=data,
        )
    return Check(name="config", ok=True, detail=detail, data=data)


def _config_home() -> Path:
    env = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(env) if env else Path.home() / ".config"


def _mentions(path: Path, needles: tuple[str, ...]) -> bool:
    try:
        if path.stat().st_size > 2_000_000:
            return False
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(n in text for n in needles)


def _walk_files(top: Path, suffixes: tuple[str, ...], limit: int = 3000) -> Iterator[Path]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "node_modules"]
        for name in filenames:
            if name.endswith(suffixes):
                count += 1
                if count > limit:
                    return
                yield Path(dirpath) / name


def find_editor_configs(
    home: Path | None = None, config_home: Path | None = None, cwd: Path | None = None
) -> dict[str, list[str]]:
    """Editor configurations that mention lsp-llm: {editor: [paths]} (only editors found)."""
    home = home or Path.home()
    config_home = config_home or _config_home()
    found: dict[str, list[str]] = {}
    needles = ("lsp_llm", "lsp-llm", "lspLlm")

    nvim = config_home / "nvim"
    if nvim.is_dir():
        hits = [str(p) for p in _walk_files(nvim, (".lua", ".vim")) if _mentions(p, needles)]
        found["neovim"] = hits
    extensions: list[str] = []
    for folder in (".vscode", ".vscode-insiders", ".vscode-oss", ".vscode-server", ".cursor"):
        ext_dir = home / folder / "extensions"
        if ext_dir.is_dir():
            with contextlib.suppress(OSError):
                extensions += [
                    str(p) for p in sorted(ext_dir.iterdir()) if "lsp-llm" in p.name.lower()
                ]
    if extensions:
        found["vscode"] = extensions
    helix = [config_home / "helix" / "languages.toml"]
    if cwd is not None:
        helix.append(cwd / ".helix" / "languages.toml")
    helix_hits = [str(p) for p in helix if p.is_file() and _mentions(p, ("lsp-llm",))]
    if helix_hits:
        found["helix"] = helix_hits
    emacs = [home / ".emacs", home / ".emacs.d" / "init.el", config_home / "emacs" / "init.el"]
    emacs_hits = [str(p) for p in emacs if p.is_file() and _mentions(p, needles)]
    if emacs_hits:
        found["emacs"] = emacs_hits
    sublime = [
        config_home / "sublime-text" / "Packages" / "User" / "LSP.sublime-settings",
        home / "Library/Application Support/Sublime Text/Packages/User/LSP.sublime-settings",
    ]
    sublime_hits = [str(p) for p in sublime if p.is_file() and _mentions(p, needles)]
    if sublime_hits:
        found["sublime"] = sublime_hits
    return found


def check_editors(cwd: Path) -> Check:
    found = find_editor_configs(cwd=cwd)
    parts = []
    for editor, paths in found.items():
        if paths:
            parts.append(f"{editor}: {', '.join(paths)}")
        elif editor == "neovim":
            parts.append(f"neovim: {_config_home() / 'nvim'} does not mention lsp_llm")
    detail = "; ".join(parts) if parts else "no editor configuration mentions lsp-llm"
    return Check(
        name="editors",
        ok=True,
        informational=True,
        detail=detail,
        fix=""
        if any(found.values())
        else "See editor-configs/ in the lsp-llm repository for VS Code, Neovim, Helix, "
        "Emacs and Sublime setups.",
        data={"found": found},
    )
