"""The README's commands: the two that CI and newcomers run, and every command and option it
shows (each must exist)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci_lines = [
        line for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line
    ]
    assert len(ci_lines) == 1
    assert ci_lines[0].strip() in readme


def test_readme_run_command_points_at_a_real_file() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"lsp-llm complete (\S+?):(\d+):(\d+)", readme)
    assert match is not None
    path = REPO / match.group(1)
    lines = path.read_text().splitlines()
    assert 1 <= int(match.group(2)) <= len(lines)


# -- every command the README shows exists, with the options it shows ----------------------------

_SPAN = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
_COMMAND = re.compile(
    r"(?:^|[\s/])(?:lsp-llm ([a-z][\w-]*)|python -m (benchmarks(?:\.eval)?)(?![\w.]))(.*)"
)


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """(tool, words) of every ``lsp-llm SUBCOMMAND ...`` and ``python -m benchmarks ...`` in a
    code span or a code block; tool is ``lsp-llm SUB``, ``benchmarks`` or ``benchmarks.eval``."""
    pieces = _SPAN.findall(_FENCE.sub("", text))
    for block in _FENCE.findall(text):
        for line in block.splitlines():
            pieces += line.split("&&")
    found: list[tuple[str, list[str]]] = []
    for piece in pieces:
        match = _COMMAND.search(piece.split("#", 1)[0])
        if match is None:
            continue
        sub, module, rest = match.groups()
        words = rest.split()
        found.append((f"lsp-llm {sub}" if sub else module, words))
    return found


def _help(tool: str) -> subprocess.CompletedProcess[str]:
    if tool.startswith("lsp-llm "):
        cmd = [sys.executable, "-m", "lsp_llm", tool.split()[1], "--help"]
    else:
        cmd = [sys.executable, "-m", tool, "--help"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_readme_commands_are_found() -> None:
    commands = readme_commands((REPO / "README.md").read_text())
    tools = {tool for tool, _ in commands}
    every = "serve connect complete explain docstring index context doctor stats bench eval"
    assert {f"lsp-llm {c}" for c in every.split()} <= tools
    assert {"benchmarks", "benchmarks.eval"} <= tools
    # The parser itself: spans, blocks, `&&` chains, comments.
    sample = (
        "run `lsp-llm serve --tcp` or `.venv/bin/lsp-llm`\n```sh\n"
        "pip install x && .venv/bin/lsp-llm complete a.py:1:2  # note --no-such\n```\n"
    )
    assert readme_commands(sample) == [
        ("lsp-llm serve", ["--tcp"]),
        ("lsp-llm complete", ["a.py:1:2"]),
    ]


def test_every_readme_command_and_option_exists() -> None:
    """`COMMAND --help` exits 0 for each command the README shows and lists every option the
    README uses with it: a renamed command or flag fails here, not in a newcomer's terminal."""
    options: dict[str, set[str]] = {}
    for tool, words in readme_commands((REPO / "README.md").read_text()):
        flags = {w.strip("[]").split("=", 1)[0] for w in words if w.strip("[").startswith("-")}
        options.setdefault(tool, set()).update(flags)
    for tool, flags in sorted(options.items()):
        out = _help(tool)
        assert out.returncode == 0, (tool, out.stdout, out.stderr)
        assert out.stdout.startswith("usage:"), (tool, out.stdout)
        for flag in flags:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", out.stdout), (tool, flag)


def test_a_command_the_cli_lacks_fails() -> None:
    out = _help("lsp-llm no-such-command")
    assert out.returncode != 0 and "invalid choice" in out.stderr
