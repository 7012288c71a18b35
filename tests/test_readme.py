"""The README's two commands are the ones CI and newcomers run."""

from __future__ import annotations

import re
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
