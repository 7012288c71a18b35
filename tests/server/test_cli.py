"""The one-shot commands, run as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "fib.py"


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_llm", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_help_explains_every_command(server_env: dict[str, str], tmp_path: Path) -> None:
    out = run(["--help"], server_env, tmp_path)
    assert out.returncode == 0
    for command in (
        "serve",
        "connect",
        "complete",
        "explain",
        "docstring",
        "index",
        "context",
        "doctor",
        "stats",
        "bench",
        "eval",
    ):
        assert command in out.stdout
    serve = run(["serve", "--help"], server_env, tmp_path)
    assert "--tcp" in serve.stdout and "127.0.0.1" in serve.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # The README documents these; argparse's REMAINDER used to refuse their options.
        (["eval", "--suite", "no-such-suite"], "unknown suite(s): no-such-suite"),
        (["eval", "--quick", "--help"], "--suite SUITE"),
        (["bench", "--quick", "--help"], "--only ONLY"),
    ],
)
def test_bench_and_eval_take_their_own_options(
    server_env: dict[str, str], tmp_path: Path, args: list[str], expected: str
) -> None:
    out = run(args, server_env, tmp_path, timeout=120)
    assert "unrecognized arguments" not in out.stderr
    assert expected in out.stdout + out.stderr, (out.stdout, out.stderr)


def test_complete_with_tiny_model(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "fib.py")
    out = run(["complete", "fib.py:5:12", "--json", *tiny_args], server_env, tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["suggestions"] and data["suggestions"][0].strip()
    assert data["backend"] == "transformers"


def test_complete_reports_bad_locations(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "fib.py")
    out = run(["complete", "fib.py:500:1", *tiny_args], server_env, tmp_path)
    assert out.returncode == 2 and "outside" in out.stderr
    out = run(["complete", "missing.py:1:1", *tiny_args], server_env, tmp_path)
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_docstring_cli_prints_a_diff_and_writes(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "fib.py")
    out = run(["docstring", "fib.py:8", *tiny_args], server_env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("--- a/fib.py") and "+    " in out.stdout
    out = run(["docstring", "fib.py:8", "--write", *tiny_args], server_env, tmp_path)
    assert out.returncode == 0, out.stderr
    import ast

    tree = ast.parse((tmp_path / "fib.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "is_prime")
    doc = ast.get_docstring(fn)
    assert doc and "n" in doc


def test_explain_cli_streams_to_stdout(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "fib.py")
    out = run(
        ["explain", "fib.py:1-5", *tiny_args, "--set", "explainMaxNewTokens=20"],
        server_env,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


@pytest.mark.slow
def test_readme_run_command_on_the_embedded_model(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """What the README's first command runs: the embedded default, auto backend."""
    out = run(["complete", str(EXAMPLE) + ":5:12", "--json"], server_env, REPO)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "gemma-3-270m" in data["model"]
    assert data["suggestions"] and data["suggestions"][0].strip()


@pytest.mark.slow
def test_embedded_gguf_through_transformers_is_converted_once(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    args = ["complete", str(EXAMPLE) + ":5:12", "--json", "--backend", "transformers", "-v"]
    first = run(args, server_env, REPO, timeout=900)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["suggestions"]
    cache = Path(server_env["XDG_CACHE_HOME"]) / "lsp-llm" / "converted"
    converted = [p for p in cache.iterdir() if (p / "done").is_file()]
    assert converted and (converted[0] / "model.safetensors").is_file()
    second = run(args, server_env, REPO, timeout=900)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["suggestions"]


# -- the shared argument helpers, in process ----------------------------------------------------


def test_locations_and_offsets() -> None:
    from lsp_llm.cli.common import line_count, line_end_offset, offset_of, split_location

    assert split_location("a/b.py:3:7", 2) == (Path("a/b.py"), [3, 7])
    assert split_location(r"C:\x\b.py:3", 1) == (Path(r"C:\x\b.py"), [3])
    assert split_location("b.py", 2) == (Path("b.py"), [])
    text = "ab\r\ncé\rx\n\fy\n"  # \f is not a line break in LSP (str.splitlines says it is)
    assert line_count(text) == 5
    assert offset_of(text, 1, 1) == 0
    assert offset_of(text, 2, 2) == 5  # columns count characters
    assert offset_of(text, 2, 99) == 6  # past the end of the line: its end
    assert offset_of(text, 4, 2) == text.index("y")
    assert offset_of(text, 9, 1) == len(text)
    assert line_end_offset(text, 1) == 2 and line_end_offset(text, 3) == text.index("x") + 1


def test_one_snapshot_labels_files_like_the_server(tmp_path: Path) -> None:
    from lsp_llm.cli.common import document_snapshot

    (tmp_path / "pkg").mkdir()
    inside = tmp_path / "pkg" / "m.py"
    snap = document_snapshot(inside, "x = 1\n", tmp_path)
    assert snap.path == "pkg/m.py" and snap.language == "python"
    assert snap.uri == inside.resolve().as_uri()
    assert document_snapshot(inside, "", tmp_path / "other").path == "m.py"


def test_explain_ranges() -> None:
    from lsp_llm.cli.oneshot import explain_range

    assert explain_range("f.py") == (Path("f.py"), None, None)
    assert explain_range("f.py:4") == (Path("f.py"), None, 4)
    assert explain_range("f.py:2-9") == (Path("f.py"), (2, 9), None)


def test_bench_outside_a_checkout_says_where_to_run_it(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    """An installed lsp-llm has no benchmarks: one clear error, exit 2."""
    code = (
        "import sys; sys.modules['benchmarks'] = None\n"
        "from lsp_llm.cli import main\n"
        "sys.exit(main(['bench', '--quick']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=server_env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "source checkout" in out.stderr and "python -m benchmarks --quick" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_checkout_is_found_from_the_package() -> None:
    from lsp_llm.cli.tools import checkout_root

    assert checkout_root() == REPO
