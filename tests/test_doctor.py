"""``lsp-llm doctor``: the real command in a subprocess, with isolated cache/config/home dirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_llm.config import Settings
from lsp_llm.doctor import check_writable, find_editor_configs, read_meminfo


def run_doctor_cmd(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lsp_llm", "doctor", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def checks_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture
def env(server_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Private cache, config and home dirs: nothing from the user's machine leaks in."""
    out = dict(server_env)
    out["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    # The real HF cache location is not needed: models here are local directories.
    out["HF_HOME"] = str(tmp_path / "cache" / "huggingface")
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "app.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    (ws / "util.py").write_text("class Box:\n    def get(self):\n        return 1\n")
    return ws


def test_passes_on_tiny_model_and_reports_speed_json(
    env: dict[str, str], workspace: Path, tiny_args: list[str]
) -> None:
    proc = run_doctor_cmd(["--json", *tiny_args], env, workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    for check in report["checks"]:
        assert {"name", "ok", "detail", "fix", "data"} <= check.keys()
        assert check["status"] != "fail", check
    checks = checks_by_name(report)
    for name in ("python", "packages", "device", "cache", "model", "backend", "model load"):
        assert checks[name]["ok"] is True, checks[name]
    load = checks["model load"]["data"]
    assert load["backend"] == "transformers"
    assert load["device"] == "cpu"
    assert load["load_s"] > 0
    gen = checks["generation"]
    assert gen["ok"] is True, gen
    assert gen["data"]["new_tokens"] > 0
    assert gen["data"]["tokens_per_s"] > 0
    assert gen["data"]["time_to_first_token_s"] > 0
    assert "tokens/s" in gen["detail"]
    assert checks["backend"]["data"]["auto"] == "transformers"
    assert checks["backend"]["data"]["reason"]
    versions = checks["packages"]["data"]["versions"]
    assert versions["lsp-llm"] and versions["torch"] and versions["pygls"]
    assert "python" in checks["tree-sitter"]["data"]["grammars"]
    device = checks["device"]["data"]
    assert device["cpu_count"] >= 1
    assert device["chosen"] == "cpu"
    assert checks["index"]["status"] == "info"
    assert checks["index"]["data"]["state"] == "missing"
    assert checks["editors"]["status"] == "info"


def test_plain_text_on_tiny_model(
    env: dict[str, str], workspace: Path, tiny_args: list[str]
) -> None:
    proc = run_doctor_cmd(tiny_args, env, workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert not out.lstrip().startswith("{")
    assert "\x1b[" not in out  # not a terminal: no colours
    assert "FAIL" not in out
    assert "OK    model load:" in out
    assert "tokens/s" in out and "first token after" in out
    assert "Everything needed works" in out


def test_wrong_model_path_fails_clearly_json(env: dict[str, str], workspace: Path) -> None:
    missing = workspace / "no-such-model"
    proc = run_doctor_cmd(["--json", "--model", str(missing)], env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    checks = checks_by_name(report)
    model = checks["model"]
    assert model["ok"] is False and model["status"] == "fail"
    assert str(missing) in model["detail"]
    assert "`model` setting" in model["fix"]
    assert "--model" in model["fix"]
    assert checks["model load"]["status"] == "skipped"
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    assert failed == ["model"]


def test_wrong_model_path_fails_clearly_text(env: dict[str, str], workspace: Path) -> None:
    proc = run_doctor_cmd(["--model", "./models/missing.gguf"], env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    fail = [i for i, line in enumerate(lines) if line.startswith("FAIL  model:")]
    assert fail, proc.stdout
    assert "missing.gguf" in lines[fail[0]]
    assert lines[fail[0] + 1].strip().startswith("fix:")
    assert "`model`" in lines[fail[0] + 1]
    assert "problem(s) need fixing: model" in proc.stdout


def test_config_index_and_editors(
    env: dict[str, str], workspace: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from lsp_llm.context.index import WorkspaceIndex

    user_cfg = Path(env["XDG_CONFIG_HOME"]) / "lsp-llm" / "config.toml"
    user_cfg.parent.mkdir(parents=True)
    user_cfg.write_text("maxNewTokens = 32\nnoSuchSetting = 1\n", encoding="utf-8")
    (workspace / ".lsp-llm.toml").write_text('docstringStyle = "numpy"\n', encoding="utf-8")
    # An index saved by the server/`lsp-llm index` under the same cache dir.
    stats = WorkspaceIndex(workspace, Settings(), Path(env["XDG_CACHE_HOME"]) / "lsp-llm").build()
    assert stats.files == 3  # the two .py files and .lsp-llm.toml
    home = Path(env["HOME"])
    (home / ".vscode" / "extensions" / "lsp-llm.lsp-llm-0.1.0").mkdir(parents=True)
    nvim = Path(env["XDG_CONFIG_HOME"]) / "nvim"
    (nvim / "lua").mkdir(parents=True)
    (nvim / "init.lua").write_text("require('lsp_llm').setup({})\n", encoding="utf-8")
    (nvim / "lua" / "other.lua").write_text("-- nothing here\n", encoding="utf-8")
    helix = Path(env["XDG_CONFIG_HOME"]) / "helix" / "languages.toml"
    helix.parent.mkdir(parents=True)
    helix.write_text('[language-server.lsp-llm]\ncommand = "lsp-llm"\n', encoding="utf-8")

    args = ["--json", "--skip-model", "--model", str(tiny_model_dir), "--backend", "transformers"]
    proc = run_doctor_cmd(args, env, workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # warnings do not fail the run
    checks = checks_by_name(json.loads(proc.stdout))

    config = checks["config"]
    assert config["status"] == "warn"
    assert config["data"]["user_config_exists"] and config["data"]["workspace_config_exists"]
    assert any("noSuchSetting" in w for w in config["data"]["warnings"])
    assert config["data"]["non_default"]["maxNewTokens"] == 32
    assert config["data"]["non_default"]["docstringStyle"] == "numpy"
    assert config["fix"]

    index = checks["index"]
    assert index["data"]["state"] == "loaded"
    assert index["data"]["files"] == 3
    assert index["data"]["symbols"] >= 2
    assert index["data"]["root"] == str(workspace.resolve())

    found = checks["editors"]["data"]["found"]
    assert found["neovim"] == [str(nvim / "init.lua")]
    assert found["vscode"][0].endswith("lsp-llm.lsp-llm-0.1.0")
    assert found["helix"] == [str(helix)]
    assert checks["model load"]["status"] == "skipped"
    assert "generation" not in checks


def test_unwritable_cache_fails(env: dict[str, str], workspace: Path, tiny_model_dir: Path) -> None:
    blocker = Path(env["XDG_CACHE_HOME"])
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the cache directory should be\n")  # even root cannot mkdir
    args = ["--json", "--skip-model", "--model", str(tiny_model_dir)]
    proc = run_doctor_cmd(args, env, workspace)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cache = checks_by_name(json.loads(proc.stdout))["cache"]
    assert cache["status"] == "fail"
    assert "XDG_CACHE_HOME" in cache["fix"]
    assert cache["data"]["problems"]


def test_read_meminfo(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       16384 kB\nMemFree: 1 kB\nMemAvailable:    8192 kB\n")
    assert read_meminfo(path) == {"MemTotal": 16384 * 1024, "MemAvailable": 8192 * 1024}
    assert read_meminfo(tmp_path / "missing") == {}


def test_check_writable(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "a" / "b") is None
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe file is removed
    (tmp_path / "file").write_text("x")
    reason = check_writable(tmp_path / "file" / "sub")
    assert reason is not None and "file" in reason


def test_find_editor_configs_nothing(tmp_path: Path) -> None:
    assert find_editor_configs(tmp_path / "home", tmp_path / "config", tmp_path) == {}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_passes_on_embedded_default(server_env: dict[str, str], workspace: Path) -> None:
    """The embedded Gemma 3 270M, as a user gets it: llama.cpp when available, else
    transformers (which converts the GGUF the first time: a minute or two)."""
    from lsp_llm.engine.models import llamacpp_available

    backends = Path(__file__).resolve().parent.parent / "lsp_llm" / "engine" / "backends"
    expected = (
        "llamacpp"
        if (backends / "llamacpp.py").is_file() and llamacpp_available()
        else "transformers"
    )
    proc = run_doctor_cmd(["--json", "--device", "cpu"], server_env, workspace, timeout=1400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    checks = checks_by_name(report)
    assert checks["model"]["data"]["embedded"] is True
    assert checks["backend"]["data"]["backend"] == expected
    assert checks["model load"]["ok"] is True
    assert checks["model load"]["data"]["backend"] == expected
    gen = checks["generation"]
    assert gen["ok"] is True, gen
    assert gen["data"]["new_tokens"] > 0 and gen["data"]["tokens_per_s"] > 0


def test_terminal_output_uses_rich() -> None:
    import io

    from lsp_llm.doctor import Check, Printer

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    printer = Printer(out, as_json=False)
    printer.check(Check(name="model", ok=False, detail="not found", fix="set `model`"))
    text = out.getvalue()
    assert "\x1b[" in text  # colours on a terminal
    assert "FAIL" in text and "fix: " in text and "set `model`" in text


def test_a_broken_grammar_warns_with_its_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    import lsp_llm.treesitter as treesitter
    from lsp_llm.doctor.grammars import check_tree_sitter
    from lsp_llm.languages import GRAMMARS

    real = treesitter.grammar_status()
    tsx = next(g for g in GRAMMARS if g.name == "tsx")
    broken = tuple(
        treesitter.GrammarStatus(s.grammar, s.languages, "ImportError: gone")
        if s.grammar == tsx
        else s
        for s in real
    )
    monkeypatch.setattr(treesitter, "grammar_status", lambda: broken)
    check = check_tree_sitter()
    assert check.status == "warn" and not check.required
    assert check.data["broken"] == {"tsx": "ImportError: gone"}
    assert "tsx" not in check.data["grammars"] and "python" in check.data["grammars"]
    assert check.data["languages"]["tsx"] == ["typescriptreact"]
    assert "not working: tsx" in check.detail
    assert check.fix.endswith("pip install tree-sitter-typescript")
