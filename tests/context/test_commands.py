"""The headless command bodies: ``lsp-llm index`` and ``lsp-llm context``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from lsp_llm.cli.workspace import cursor_offset, run_context, run_index
from lsp_llm.config import Settings

from .conftest import SECRET_VALUE, write


def test_index_prints_stats(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_index(repo, watch=False, as_json=False, settings=settings, cache_dir=cache) == 0
    out = capsys.readouterr().out
    for label in ("files", "symbols", "chunks", "bytes", "seconds", "index path"):
        assert label in out
    assert str(cache / "index") in out


def test_index_json_and_reuse(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_index(repo, watch=False, as_json=True, settings=settings, cache_dir=cache) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["files"] == 4 and first["reparsed"] == 4
    assert Path(first["index_path"]).is_file()
    assert {"files", "symbols", "chunks", "bytes", "seconds", "index_path"} <= first.keys()
    assert run_index(repo, watch=False, as_json=True, settings=settings, cache_dir=cache) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["reparsed"] == 0 and second["reused"] == 4
    assert second["index_path"] == first["index_path"]


def test_index_errors(
    tmp_path: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert run_index(missing, watch=False, as_json=False, settings=settings, cache_dir=cache) != 0
    assert "no such directory" in capsys.readouterr().err
    file = write(tmp_path, "f.py", "x")
    assert run_index(file, watch=False, as_json=False, settings=settings, cache_dir=cache) != 0
    assert "not a directory" in capsys.readouterr().err


def test_context_shows_the_cross_file_definition(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = repo / "app/main.py"
    lines = main.read_text().split("\n")
    line = 5  # "    total = compute_area("
    assert lines[line - 1].endswith("compute_area(")
    col = len(lines[line - 1]) + 1
    code = run_context(main, line, col, as_json=True, settings=settings, cache_dir=cache)
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == "app/main.py"
    assert record["root"] == str(repo.resolve())
    definitions = [s for s in record["snippets"] if s["source"] == "definition"]
    assert definitions[0]["symbol"] == "compute_area"
    assert definitions[0]["path"] == "pkg/geometry.py"
    assert definitions[0]["line"] == definitions[0]["start_line"] + 1
    assert "def compute_area(" in definitions[0]["text"]
    assert all(isinstance(s["score"], float) for s in record["snippets"])

    # The human-readable form shows the same snippets with scores and sources.
    assert run_context(main, line, col, as_json=False, settings=settings, cache_dir=cache) == 0
    text = capsys.readouterr().out
    assert "definition score=" in text and "pkg/geometry.py:" in text
    assert "def compute_area(width: float, height: float) -> float:" in text


def test_context_never_shows_secrets(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = write(repo, "app/probe.py", "API_KEY = token\ncompute_area width height total token\n")
    for as_json in (True, False):
        assert run_context(probe, 2, 1, as_json=as_json, settings=settings, cache_dir=cache) == 0
        assert SECRET_VALUE not in capsys.readouterr().out
    # Asking for the context of a secret file itself shows nothing.
    assert run_context(repo / ".env", 2, 1, as_json=True, settings=settings, cache_dir=cache) == 0
    assert json.loads(capsys.readouterr().out)["snippets"] == []


def test_context_errors(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = repo / "app/main.py"
    context = functools.partial(run_context, as_json=False, settings=settings, cache_dir=cache)
    assert context(repo / "missing.py", 1, 1) != 0
    assert "no such file" in capsys.readouterr().err
    assert context(main, 999, 1) != 0
    assert "outside the file" in capsys.readouterr().err
    assert context(main, 1, 0) != 0
    assert "column" in capsys.readouterr().err
    (repo / "blob.bin").write_bytes(b"\x00\x01")
    assert context(repo / "blob.bin", 1, 1) != 0
    assert "binary" in capsys.readouterr().err


def test_cursor_offset() -> None:
    text = "ab\ncdé\n"
    assert cursor_offset(text, 1, 1) == 0
    assert cursor_offset(text, 2, 3) == 5
    assert cursor_offset(text, 2, 99) == 6  # end of the line
    assert cursor_offset(text, 3, 1) == 7
    with pytest.raises(ValueError):
        cursor_offset(text, 4, 1)


def test_context_shows_exactly_the_snippets_of_the_servers_prompt(
    repo: Path, settings: Settings, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lsp-llm context`` against the server's own retriever (``Workspaces.retriever_for``)
    and prompt path (``completion_prompt``) at a few positions: the same snippets, in order."""
    from lsp_llm.context.index import WorkspaceIndex
    from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
    from lsp_llm.features.completion import DocumentSnapshot, completion_prompt
    from lsp_llm.server.indexing import Workspaces, _Root

    write(repo, "pkg/units.py", "def convert_units(value, unit):\n    return value * 2.54\n")
    main = write(
        repo,
        "app/main.py",
        "from pkg.geometry import compute_area, Circle\nfrom pkg.units import convert_units\n\n\n"
        "def report(width, height):\n    total = compute_area(width, height)\n"
        "    ring = Circle(total)\n    return convert_units(ring.circumference(), 'cm')\n",
    )
    index = WorkspaceIndex(repo, settings, cache)
    index.build()
    workspaces = Workspaces(settings, cache)
    workspaces.roots[index.root] = _Root(index=index, state="ready")
    text = main.read_text()
    lines = text.split("\n")
    compared = 0
    for line, col in ((6, 13), (7, 12), (8, 12), (8, 40), (1, 1)):
        assert run_context(main, line, col, as_json=True, settings=settings, cache_dir=cache) == 0
        shown = json.loads(capsys.readouterr().out)["snippets"]
        offset = sum(len(current) + 1 for current in lines[: line - 1]) + col - 1
        snap = DocumentSnapshot(
            uri=main.as_uri(), path="app/main.py", language="python", version=1, text=text
        )
        workspaces.stable.forget(main.as_uri())  # a fresh region, as the command computes
        prompt = completion_prompt(
            snap,
            offset,
            settings=settings,
            tokenizer=ApproxTokenizer(),
            template=None,
            retriever=workspaces.retriever_for(),
        )
        served = [(s.path, s.start_line, s.source, s.text) for s in prompt.snippets]
        assert [(s["path"], s["start_line"], s["source"], s["text"]) for s in shown] == served
        compared += bool(served)
    assert compared >= 3  # most positions do get snippets
