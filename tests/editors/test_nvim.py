"""Real Neovim, headless, with the shipped plugin and its example init.lua.

Each test starts `nvim --headless --clean -u editor-configs/nvim/examples/init.lua FILE`
and runs tests/editors/nvim/driver.lua, which plays one scenario through Neovim's own
LSP client (real keys in insert mode, the plugin's commands) and writes what it saw
to JSON. The server is this checkout's `lsp_llm` with the tiny random-weight model.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.editors.conftest import NVIM_DRIVER, NVIM_INIT

pytestmark = pytest.mark.slow

SOURCE = """def add(a, b):
    return a + b


def scale(values, factor):
    result = []
    for value in values:
        result.append(value * factor)
    return result
"""


def run_scenario(
    nvim_bin: str, env: dict[str, str], workspace: Path, scenario: str, text: str = SOURCE
) -> dict[str, Any]:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / ".lsp-llm.toml").write_text("# lsp-llm test workspace\n", encoding="utf-8")
    source = workspace / "example.py"
    source.write_text(text, encoding="utf-8")
    out = workspace.parent / f"{scenario}.json"
    env = {
        **env,
        "LSP_LLM_TEST_SCENARIO": scenario,
        "LSP_LLM_TEST_OUT": str(out),
        "LSP_LLM_TEST_TIMEOUT": "150000",
    }
    proc = subprocess.run(
        [
            nvim_bin,
            "--headless",
            "--clean",
            "-u",
            str(NVIM_INIT),
            str(source),
            "-c",
            f"luafile {NVIM_DRIVER}",
        ],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    diagnostics = _diagnostics(workspace.parent, env, proc)
    assert out.exists(), f"nvim wrote no result (exit {proc.returncode})\n{diagnostics}"
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"], f"{result.get('error')}\n{json.dumps(result, indent=1)}\n{diagnostics}"
    result["diagnostics"] = diagnostics
    return result


def _diagnostics(root: Path, env: dict[str, str], proc: subprocess.CompletedProcess[str]) -> str:
    parts = [f"--- nvim stderr ---\n{proc.stderr[-3000:]}"]
    lsp_log = Path(env["XDG_STATE_HOME"]) / "nvim" / "lsp.log"
    server_log = root / "server.log"
    for name, path in (("nvim lsp.log", lsp_log), ("server log", server_log)):
        if path.exists():
            parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-4000:]}")
    return "\n".join(parts)


def _events(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in result["events"] if e["name"] == name]


def test_inline_completion_ghost_text_and_accept(
    nvim_bin: str, nvim_version: tuple[int, int], editor_env: dict[str, str], tmp_path: Path
) -> None:
    if nvim_version < (0, 12):
        pytest.skip(f"vim.lsp.inline_completion needs Neovim 0.12 (found {nvim_version})")
    text = "def add(a, b):\n    \n\n\nprint(add(1, 2))\n"
    result = run_scenario(nvim_bin, editor_env, tmp_path / "ws", "inline", text)

    assert result["capabilities"]["inlineCompletion"], "server did not announce inlineCompletion"
    assert result["enabled"], "the plugin did not enable vim.lsp.inline_completion"
    assert result["mode_when_shown"].startswith("i")
    assert result["ghost_text"].strip(), "empty ghost text"
    # <Tab> accepted the suggestion: line 2 grew by the suggested text.
    before, after = result["before"], result["after"]
    assert after != before
    assert after[0] == before[0]
    assert "".join(after[1:]).strip(), after
    inserted = "\n".join(after[1 : len(after) - (len(before) - 2)])
    first_ghost_line = result["ghost_text"].split("\n")[0].strip()
    # Neovim draws control characters in virtual text as ^X.
    shown = re.sub(r"[\x00-\x08\x0b-\x1f]", lambda m: "^" + chr(ord(m.group()) + 64), inserted)
    assert first_ghost_line in shown, (result["ghost_text"], after)
    # The item's command told the server the suggestion was accepted, with what went in
    # and where (for the retention check), and the ghost text was reported as shown.
    commands = [e["data"].get("command") for e in _events(result, "request")]
    assert "lspLlm.didAccept" in commands, result["events"]
    accept = _accept_arguments(result)[0]
    assert accept["kind"] == "full", accept
    assert accept["acceptedText"].split("\n")[0] in inserted, (accept, after)
    assert accept["position"] == {"line": 1, "character": 4}, accept
    assert accept["uri"].endswith("/example.py"), accept
    shown_ids = [e["data"]["params"]["id"] for e in _events(result, "notify")]
    assert accept["id"] in shown_ids, result["events"]
    # The ghost text is drawn in a colour unlike normal text both with 'termguicolors'
    # (fg) and without it (ctermfg): the stock ComplHint -> NonText had no cterm colour,
    # so in a 256-colour terminal the suggestion looked like real code.
    normal = result["normal_hl"]
    assert result["ghost_hl"], "no highlight group on the ghost text"
    for group, hl in result["ghost_hl"].items():
        assert hl.get("ctermfg") is not None, (group, hl)
        assert hl.get("ctermfg") != normal.get("ctermfg"), (group, hl, normal)
        assert hl.get("fg") is not None and hl.get("fg") != normal.get("fg"), (group, hl, normal)


def _accept_arguments(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["data"]["arguments"][0]
        for e in _events(result, "request")
        if e["data"].get("command") == "lspLlm.didAccept"
    ]


_LUA_SPACE = " \t\n\v\f\r"


def _next_word(text: str) -> str:
    """The plugin's accept_word rule (lua/lsp_llm/inline.lua ``next_chunk``), in Python."""
    space = re.match(f"[{_LUA_SPACE}]*", text)
    assert space is not None
    rest = text[space.end() :]
    word = re.match(r"[A-Za-z0-9_]+", rest) or re.match(f"[^A-Za-z0-9_{_LUA_SPACE}]+", rest)
    return space.group() + (word.group() if word else "")


PARTIAL_TEXT = "def add(a, b):\n    \n\n\nprint(add(1, 2))\n"


def _partial_scenario(nvim_bin: str, env: dict[str, str], workspace: Path) -> dict[str, Any]:
    env = {
        **env,
        "LSP_LLM_RETENTION_DELAY_S": "0.5",
        "LSP_LLM_TEST_RETENTION_WAIT": "2000",
        # Its own stats file: the session's cache is shared with the other tests' servers.
        "XDG_CACHE_HOME": str(workspace.parent / "cache"),
    }
    return run_scenario(nvim_bin, env, workspace, "partial", PARTIAL_TEXT)


def test_accept_word_takes_one_word_reports_it_and_is_counted(
    nvim_bin: str, nvim_version: tuple[int, int], editor_env: dict[str, str], tmp_path: Path
) -> None:
    if nvim_version < (0, 12):
        pytest.skip(f"vim.lsp.inline_completion needs Neovim 0.12 (found {nvim_version})")
    result = _partial_scenario(nvim_bin, editor_env, tmp_path / "ws")

    shows = _events(result, "notify")
    assert shows and shows[0]["data"]["params"]["id"], result["events"]
    accepts = _accept_arguments(result)
    assert len(accepts) == 1, accepts
    accept = accepts[0]
    # The suggestion drawn: the first of the last answer before the accept (raw text).
    accepted_at = next(
        e["t"] for e in _events(result, "request") if e["data"].get("command") == "lspLlm.didAccept"
    )
    answers = [e for e in _events(result, "inline_items") if e["data"] and e["t"] <= accepted_at]
    assert answers, result["events"]
    text = answers[-1]["data"][0]
    word = _next_word(text)
    assert word.strip(), text
    assert accept["kind"] == ("full" if word == text else "word"), accept
    assert accept["acceptedText"] == word, (accept, text)
    assert accept["id"] == shows[0]["data"]["params"]["id"]
    assert accept["position"] == {"line": 1, "character": 4}, accept
    # Exactly that word went into the buffer at the cursor; the rest stays ghost text.
    before = result["before"]
    expected = "\n".join(before).replace("def add(a, b):\n    ", "def add(a, b):\n    " + word, 1)
    assert "\n".join(result["after"]) == expected, (result["after"], word)
    # The server counted it: displayed, a partial accept (a full one where the word was the
    # whole suggestion), and after its retention delay every character of the word retained.
    total = result["acceptance"]["total"]
    assert total["displayed"] >= 1, total
    partial = accept["kind"] == "word"  # "full" where the word was the whole suggestion
    assert (total["partiallyAccepted"], total["accepted"]) == ((1, 0) if partial else (0, 1)), (
        total,
        _accept_arguments(result),
    )
    # The word is still in the buffer after the delay: all of it retained.
    assert total["acceptedChars"] == len(word) and total["retainedChars"] == len(word), total
    assert total["retentionRate"] == 1.0


def test_explain_streams_into_float_and_q_cancels(
    nvim_bin: str, editor_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_scenario(nvim_bin, editor_env, tmp_path / "ws", "explain")

    assert result["float"], "the explanation is not in a floating window"
    assert result["float_filetype"] == "markdown"
    done = _events(result, "LspLlmExplainDone")
    assert len(done) == 2
    first_done = done[0]
    chunks = [e for e in _events(result, "LspLlmExplainChunk") if e["t"] <= first_done["t"]]
    assert chunks, "no partial result arrived before the request finished"
    streamed = "".join(c["data"]["text"] for c in chunks)
    # The float showed the text as it streamed, and the final answer matches the stream.
    assert chunks[0]["data"]["float_text"].strip()
    assert chunks[-1]["data"]["float_text"].startswith(streamed.split("\n")[0])
    assert first_done["data"].get("err") is None, first_done
    assert first_done["data"]["text"].strip()
    assert first_done["data"]["text"].startswith(streamed.rstrip()[:20])
    # `q` closed the second float; the request was cancelled (or had just finished).
    assert result["q_closed_float"]
    second = done[1]["data"]
    pressed = _events(result, "pressing_q")[0]["data"]
    if not pressed["done_already"]:
        assert second.get("err") == "cancelled", second


def test_docstring_command_edits_buffer(
    nvim_bin: str, editor_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_scenario(nvim_bin, editor_env, tmp_path / "ws", "docstring")

    done = _events(result, "LspLlmDocstringDone")
    assert done and done[0]["data"]["applied"], done
    before, after = result["before"], result["after"]
    assert len(after) > len(before), after
    assert after[0] == before[0] == "def add(a, b):"
    assert after[-len(before) + 1 :] == before[1:], "the function body must be kept"
    # The new lines sit inside the function, indented, as a string literal.
    added = after[1 : len(after) - len(before) + 1]
    assert all(line.startswith("    ") or not line.strip() for line in added), added
    assert added[0].strip().startswith(('"""', "'''", 'r"""')), added


def _messages_scenario(nvim_bin: str, env: dict[str, str], workspace: Path) -> str:
    env = {**env, "LSP_LLM_TEST_WAIT": "20000"}
    result = run_scenario(nvim_bin, env, workspace, "messages", "x = 1\n")
    messages: str = result["messages"]
    return messages


def test_missing_server_is_reported_with_the_fix(
    nvim_bin: str, editor_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**editor_env, "PATH": "/usr/bin:/bin"}  # no lsp-llm anywhere
    messages = _messages_scenario(nvim_bin, env, tmp_path / "ws")
    assert 'lsp-llm: the server command "lsp-llm" is not executable' in messages, messages
    assert "pip install lsp-llm" in messages and "cmd = {" in messages, messages


def test_server_that_exits_is_reported(
    nvim_bin: str, editor_env: dict[str, str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    script = bin_dir / "lsp-llm"
    script.write_text("#!/bin/sh\necho 'no model here' >&2\nexit 3\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {**editor_env, "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    messages = _messages_scenario(nvim_bin, env, tmp_path / "ws")
    assert "lsp-llm: the server exited (code 3, signal 0)" in messages, messages
    assert "lsp-llm serve" in messages, messages
