"""Real Emacs (Debian 12: emacs-nox 28.2, elpa-eglot 1.9) with editor-configs/emacs/lsp-llm.el.

`emacs -q --batch` loads the shipped lsp-llm.el and tests/editors/emacs/driver.el, which
connects eglot to this checkout's server (the tiny model, through the `lsp-llm` wrapper on
PATH) and plays what a user does: completion-at-point, `M-x lsp-llm-docstring`, the code
actions. Install the editor with tests/editors/setup_editors.sh.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.editors.conftest import REPO

pytestmark = pytest.mark.slow

LSP_LLM_EL = REPO / "editor-configs" / "emacs" / "lsp-llm.el"
DRIVER = Path(__file__).resolve().parent / "emacs" / "driver.el"
SOURCE = "def fib(n):\n    ret\n\n\nprint(fib(3))\n"


@pytest.fixture(scope="module")
def emacs_bin() -> str:
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("no emacs: run tests/editors/setup_editors.sh")
    return emacs


@pytest.fixture
def session(emacs_bin: str, editor_env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".lsp-llm.toml").write_text("# lsp-llm test workspace\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(workspace)], check=True, timeout=30)
    source = workspace / "example.py"
    source.write_text(SOURCE, encoding="utf-8")
    out = tmp_path / "emacs.json"
    env = {
        **editor_env,
        "HOME": str(tmp_path),
        "LSP_LLM_TEST_FILE": str(source),
        "LSP_LLM_TEST_OUT": str(out),
    }
    proc = subprocess.run(
        [
            emacs_bin,
            # -q, not -Q: Debian's site-start puts elpa-eglot on the load path.
            "-q",
            "--batch",
            "-l",
            str(LSP_LLM_EL),
            "-l",
            str(DRIVER),
        ],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = tmp_path / "server.log"
    diagnostics = f"--- emacs stderr ---\n{proc.stderr[-4000:]}"
    if log.exists():
        diagnostics += f"\n--- server log ---\n{log.read_text(errors='replace')[-4000:]}"
    assert out.exists(), f"emacs wrote no result (exit {proc.returncode})\n{diagnostics}"
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert result.get("ok") is True, f"{result.get('error')}\n{json.dumps(result, indent=1)}"
    result["diagnostics"] = diagnostics
    return result


def test_emacs_eglot_session(session: dict[str, Any]) -> None:
    r = session
    assert r["emacs"].startswith("28."), r["emacs"]
    assert r["server_class"] == "lsp-llm-server"
    assert r["mode_line"] == " llm:ready", r["mode_line"]
    # The model state reaches the mode line; while it loads the user is told why
    # completions are empty.
    states = [s[0] for s in r["states"]]
    assert "loading" in states and "ready" in states, r["states"]
    assert "lsp-llm: loading the model" in r["messages"], r["messages"]
    assert {s[1] for s in r["states"] if s[0] == "loading"} == {" llm:loading"}, r["states"]

    # Completion labels are what gets inserted: vanilla completion inserts the label.
    items = r["completion_items"]
    assert items, "no completion items"
    for item in items:
        assert item["label"] == item["newText"], item
    assert r["completion_inserted"] == items[0]["newText"], (r["completion_inserted"], items[0])

    # M-x lsp-llm-docstring edits the buffer without asking first.
    assert r["docstring_prompts"] == [], r["docstring_prompts"]
    before, after = r["docstring_before"], r["docstring_after"]
    assert len(after) > len(before) and after[0] == before[0], after
    assert after[1].strip().startswith(('"""', "'''")), after

    # The code actions: the explanation lands in a buffer, the docstring needs no prompt.
    assert {"Explain this code", "Generate docstring"} <= set(r["code_actions"]), r
    assert r["explain_buffer"].strip(), "the explanation is not in the *lsp-llm explain* buffer"
    assert r["action_docstring_prompts"] == [], r["action_docstring_prompts"]
    assert len(r["action_docstring_after"]) > len(before)
