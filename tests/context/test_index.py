"""WorkspaceIndex on real files: builds, restarts, damage, updates, open documents, secrets."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.parse import ParseResult, parse_file

from .conftest import MAIN, SECRET_VALUE, write


class CountingParse:
    """``parse_file`` that records which files it was asked to parse."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, rel: str, text: str) -> ParseResult:
        with self._lock:
            self.calls.append(rel)
        return parse_file(rel, text)


def cursor_at_end(path: Path) -> tuple[str, int]:
    text = path.read_text()
    return text, len(text)


def test_build_counts_and_stats(repo: Path, settings: Settings, cache: Path) -> None:
    index = WorkspaceIndex(repo, settings, cache)
    progress: list[tuple[int, int]] = []
    stats = index.build(progress=lambda done, total: progress.append((done, total)))
    assert stats.state == "ready"
    assert stats.files == 4  # pkg/__init__.py, pkg/geometry.py, app/main.py, README.md
    assert stats.symbols >= 4
    assert stats.chunks >= 3
    assert stats.bytes > 0
    assert stats.seconds >= 0
    assert stats.reparsed == 4
    assert stats.index_path is not None and Path(stats.index_path).is_file()
    assert Path(stats.index_path).is_relative_to(cache / "index")
    assert progress[-1] == (4, 4)
    assert [s.kind for s in index.lookup_symbol("compute_area")] == ["function"]
    assert [s.container for s in index.lookup_symbol("circumference")] == ["Circle"]


def test_restart_reuses_unchanged_files(repo: Path, settings: Settings, cache: Path) -> None:
    first = CountingParse()
    WorkspaceIndex(repo, settings, cache, parse=first).build()
    assert sorted(first.calls) == ["README.md", "app/main.py", "pkg/__init__.py", "pkg/geometry.py"]

    # Restart with nothing changed: no file is parsed again.
    second = CountingParse()
    index = WorkspaceIndex(repo, settings, cache, parse=second)
    stats = index.build()
    assert second.calls == []
    assert stats.reparsed == 0 and stats.reused == 4
    assert stats.store == "loaded"
    assert index.lookup_symbol("compute_area")

    # Touch one file (same content, new mtime) and edit another: only the edit is parsed.
    st = (repo / "README.md").stat()
    os.utime(repo / "README.md", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    write(repo, "app/main.py", MAIN + "\n\ndef added():\n    pass\n")
    third = CountingParse()
    stats = WorkspaceIndex(repo, settings, cache, parse=third).build()
    assert third.calls == ["app/main.py"]
    assert stats.reparsed == 1


def test_corrupt_and_truncated_index_files_are_rebuilt(
    repo: Path, settings: Settings, cache: Path
) -> None:
    stats = WorkspaceIndex(repo, settings, cache).build()
    assert stats.index_path is not None
    path = Path(stats.index_path)
    good = path.read_bytes()
    for damaged in (good[: len(good) // 3], b"\x00garbage\xff" * 10):
        path.write_bytes(damaged)
        counting = CountingParse()
        index = WorkspaceIndex(repo, settings, cache, parse=counting)
        rebuilt = index.build()
        assert rebuilt.store == "corrupt"
        assert rebuilt.files == 4 and len(counting.calls) == 4
        assert index.lookup_symbol("compute_area")
        # ... and the rebuilt file is whole again.
        assert WorkspaceIndex(repo, settings, cache).build().store == "loaded"


def test_damaged_heavy_section_is_rebuilt_when_first_needed(
    repo: Path, settings: Settings, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart checks only the small meta section; damage to the texts and symbols is found
    when retrieval first loads them: logged, the files read again, the store rewritten."""
    stats = WorkspaceIndex(repo, settings, cache).build()
    assert stats.index_path is not None
    path = Path(stats.index_path)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0x01]))
    counting = CountingParse()
    index = WorkspaceIndex(repo, settings, cache, parse=counting)
    restarted = index.build()
    assert restarted.store == "loaded" and restarted.files == 4 and restarted.reparsed == 0
    assert restarted.deferred == 4 and counting.calls == []
    with caplog.at_level(logging.WARNING):
        assert index.lookup_symbol("compute_area")
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    assert len(counting.calls) == 4
    assert index.stats().store == "corrupt" and index.stats().deferred == 0
    # ... and the rewritten file is whole again.
    again = CountingParse()
    fresh = WorkspaceIndex(repo, settings, cache, parse=again)
    assert fresh.build().store == "loaded"
    assert fresh.lookup_symbol("compute_area") and again.calls == []


def test_unwritable_cache_keeps_working_in_memory(
    repo: Path, settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    index = WorkspaceIndex(repo, settings, blocker)
    stats = index.build()
    assert stats.files == 4
    assert stats.index_path is None
    assert stats.store == "memory"
    text, offset = cursor_at_end(repo / "app/main.py")
    assert any(
        s.symbol == "compute_area" for s in index.retrieve(repo / "app/main.py", text, offset)
    )


def test_cross_file_definition_is_retrieved(repo: Path, settings: Settings, cache: Path) -> None:
    index = WorkspaceIndex(repo, settings, cache)
    index.build()
    text, offset = cursor_at_end(repo / "app/main.py")
    snippets = index.retrieve(repo / "app/main.py", text, offset)
    definitions = [s for s in snippets if s.source == "definition"]
    assert definitions and definitions[0].symbol == "compute_area"
    assert definitions[0].path == "pkg/geometry.py"
    assert "def compute_area(width: float, height: float) -> float:" in definitions[0].text
    assert "Area of a width x height rectangle." in definitions[0].text
    assert all(s.path != "app/main.py" for s in snippets)
    # Deterministic.
    assert snippets == index.retrieve(repo / "app/main.py", text, offset)


def test_secrets_never_reach_retrieval(repo: Path, settings: Settings, cache: Path) -> None:
    index = WorkspaceIndex(repo, settings, cache)
    index.build()
    assert index.snapshot().files.keys() == {
        "README.md",
        "app/main.py",
        "pkg/__init__.py",
        "pkg/geometry.py",
    }
    # Even opening a secret in the editor does not put it into the index.
    assert not index.set_open_document(repo / ".env", (repo / ".env").read_text())
    query = "compute_area width height total API_KEY token\n" * 5
    for budget in (50, 500, 5000):
        snippets = index.retrieve(repo / "app/main.py", query, len(query), budget=budget)
        assert all(SECRET_VALUE not in s.text for s in snippets)
        assert all(s.path in {"pkg/geometry.py", "README.md", "pkg/__init__.py"} for s in snippets)
    # Nor does a secret file get context as the current file.
    assert index.retrieve(repo / ".env", query, len(query)) == []
    # And the persisted file does not hold it either.
    stats = index.stats()
    assert stats.index_path is not None
    assert SECRET_VALUE.encode() not in Path(stats.index_path).read_bytes()


def test_open_documents_win_over_disk(repo: Path, settings: Settings, cache: Path) -> None:
    index = WorkspaceIndex(repo, settings, cache)
    index.build()
    geometry = repo / "pkg/geometry.py"
    unsaved = geometry.read_text().replace("compute_area", "surface_of")
    assert index.set_open_document(geometry, unsaved)
    assert index.lookup_symbol("compute_area") == []
    assert [s.path for s in index.lookup_symbol("surface_of")] == ["pkg/geometry.py"]
    text = "from pkg.geometry import surface_of\n\nx = surface_of("
    snippets = index.retrieve(repo / "app/main.py", text, len(text))
    assert any(s.symbol == "surface_of" for s in snippets)
    assert index.stats().open_documents == 1
    # A brand-new unsaved file is usable too.
    assert index.set_open_document(repo / "pkg/fresh.py", "def brand_new_helper():\n    pass\n")
    assert index.lookup_symbol("brand_new_helper")
    index.close_document(repo / "pkg/fresh.py")
    index.close_document(geometry)
    assert [s.path for s in index.lookup_symbol("compute_area")] == ["pkg/geometry.py"]
    assert index.lookup_symbol("brand_new_helper") == []
    assert index.stats().open_documents == 0


def test_update_paths_add_modify_delete_rename(repo: Path, settings: Settings, cache: Path) -> None:
    counting = CountingParse()
    index = WorkspaceIndex(repo, settings, cache, parse=counting)
    index.build()
    counting.calls.clear()

    added = write(repo, "pkg/extra.py", "def extra_function():\n    return 1\n")
    index.update_paths([added])
    assert [s.name for s in index.lookup_symbol("extra_function")] == ["extra_function"]
    assert counting.calls == ["pkg/extra.py"]

    write(repo, "pkg/extra.py", "def renamed_function():\n    return 2\n")
    index.update_paths([added])
    assert index.lookup_symbol("extra_function") == []
    assert index.lookup_symbol("renamed_function")

    moved = repo / "lib" / "moved.py"
    moved.parent.mkdir()
    added.rename(moved)
    index.update_paths([added, moved])
    assert [s.path for s in index.lookup_symbol("renamed_function")] == ["lib/moved.py"]

    moved.unlink()
    index.update_paths([moved])
    assert index.lookup_symbol("renamed_function") == []

    # A whole directory appears, then disappears.
    write(repo, "tree/a.py", "def in_tree_a():\n    pass\n")
    write(repo, "tree/sub/b.py", "def in_tree_b():\n    pass\n")
    index.update_paths([repo / "tree"])
    assert index.lookup_symbol("in_tree_a") and index.lookup_symbol("in_tree_b")
    for path in (repo / "tree/sub/b.py", repo / "tree/a.py"):
        path.unlink()
    (repo / "tree/sub").rmdir()
    (repo / "tree").rmdir()
    index.update_paths([repo / "tree"])
    assert not index.lookup_symbol("in_tree_a") and not index.lookup_symbol("in_tree_b")

    # Secrets and ignored paths are refused on update as well.
    write(repo, ".env.local", f"TOKEN={SECRET_VALUE}\n")
    write(repo, "node_modules/x/index.js", "function fromNodeModules() {}\n")
    index.update_paths([repo / ".env.local", repo / "node_modules/x/index.js"])
    assert ".env.local" not in index.snapshot().files
    assert index.lookup_symbol("fromNodeModules") == []

    # Changing an ignore file rescans with the new rules.
    write(repo, ".gitignore", "pkg/\n")
    index.update_paths([repo / ".gitignore"])
    assert index.lookup_symbol("compute_area") == []

    # Everything survives a restart.
    assert index.flush()
    again = WorkspaceIndex(repo, settings, cache)
    assert again.build().reparsed == 0
    assert again.lookup_symbol("compute_area") == []


def test_oversized_and_binary_files(repo: Path, cache: Path) -> None:
    settings = Settings(index_max_file_bytes=2_000)
    write(repo, "big.py", "def big():\n    pass\n" + "# padding\n" * 500)
    (repo / "blob.py").write_bytes(b"def f():\x00\x01\x02")
    index = WorkspaceIndex(repo, settings, cache)
    stats = index.build()
    assert index.lookup_symbol("big") == []
    assert stats.skipped == 1  # blob.py, remembered as binary
    counting = CountingParse()
    again = WorkspaceIndex(repo, settings, cache, parse=counting)
    again.build()
    assert counting.calls == []


def test_retrieval_can_be_switched_off(repo: Path, cache: Path) -> None:
    index = WorkspaceIndex(repo, Settings(retrieval=False), cache)
    index.build()
    text, offset = cursor_at_end(repo / "app/main.py")
    assert index.retrieve(repo / "app/main.py", text, offset) == []


def test_retrieve_while_building_in_another_thread(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    root = tmp_path / "many"
    for i in range(150):
        write(root, f"m{i}.py", f"def function_{i}(arg):\n    return arg + {i}\n")
    index = WorkspaceIndex(root, settings, cache)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            index.build()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    text = "x = function_42("
    while thread.is_alive():
        index.retrieve(root / "new.py", text, len(text))
        index.stats()
    thread.join()
    assert not errors
    snippets = index.retrieve(root / "new.py", text, len(text))
    assert [s.symbol for s in snippets if s.source == "definition"] == ["function_42"]


def test_cross_file_definitions_in_other_languages(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    root = tmp_path / "poly"
    write(
        root,
        "web/geometry.ts",
        "/** Area of a rectangle. */\n"
        "export function computeArea(w: number, h: number): number {\n  return w * h;\n}\n",
    )
    write(root, "web/app.ts", 'import { computeArea } from "./geometry";\n')
    write(
        root, "src/shapes.rs", "/// Area.\npub fn area_of(w: f64, h: f64) -> f64 {\n    w * h\n}\n"
    )
    write(root, "src/main.rs", "use crate::shapes::area_of;\n")
    write(
        root,
        "shapes/shapes.go",
        "package shapes\n\n// Perimeter of a square.\nfunc Perimeter(side int) int {\n"
        "\treturn 4 * side\n}\n",
    )
    write(root, "cmd/main.go", 'package main\n\nimport "example.com/poly/shapes"\n')
    index = WorkspaceIndex(root, settings, cache)
    index.build()
    ts_text = 'import { computeArea } from "./geometry";\nconst a = computeArea('
    rs_text = "use crate::shapes::area_of;\nfn main() {\n    let x = area_of("
    go_text = 'package main\n\nimport "example.com/poly/shapes"\n\nfunc main() {\n'
    go_text += "\tp := shapes.Perimeter("
    cases = [
        ("web/app.ts", ts_text, "computeArea", "web/geometry.ts"),
        ("src/main.rs", rs_text, "area_of", "src/shapes.rs"),
        ("cmd/main.go", go_text, "Perimeter", "shapes/shapes.go"),
    ]
    for current, text, symbol, path in cases:
        snippets = index.retrieve(root / current, text, len(text))
        definitions = [(s.symbol, s.path) for s in snippets if s.source == "definition"]
        assert (symbol, path) in definitions, (current, snippets)


def test_cold_build_in_worker_processes_matches_in_thread(
    repo: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process pool (spawned workers) produces exactly the entries an in-thread build
    does, in the same order, and says how many workers it used."""
    from lsp_llm.context import reader

    for i in range(40):
        write(repo, f"many/mod_{i}.py", f"def helper_{i}(x):\n    return x + {i}\n")
    (repo / "many" / "blob.bin").write_bytes(b"\x00\x01" * 100)
    serial = WorkspaceIndex(repo, settings, tmp_path / "serial")
    serial_stats = serial.build()
    assert serial_stats.workers == 1
    monkeypatch.setattr(reader, "POOL_MIN_FILES", 10)
    monkeypatch.setattr(reader, "worker_count", lambda: 2)
    pooled = WorkspaceIndex(repo, settings, tmp_path / "pooled")
    pooled_stats = pooled.build()
    assert pooled_stats.workers == 2
    assert pooled_stats.files == serial_stats.files == 44
    assert pooled_stats.skipped == serial_stats.skipped == 1
    assert pooled_stats.symbols == serial_stats.symbols
    assert pooled_stats.chunks == serial_stats.chunks
    a, b = serial.snapshot(), pooled.snapshot()
    assert list(a.files) == list(b.files)
    assert {r: d.entry for r, d in a.files.items()} == {r: d.entry for r, d in b.files.items()}
    assert {r: d.vocabulary for r, d in a.files.items()} == {
        r: d.vocabulary for r, d in b.files.items()
    }
    assert a.symbols == b.symbols and a.postings == b.postings and a.n_docs == b.n_docs
    assert pooled.lookup_symbol("helper_7")[0].path == "many/mod_7.py"


def test_restart_defers_loading_until_retrieval(
    repo: Path, settings: Settings, cache: Path
) -> None:
    """A no-change restart reads no file and decodes no text: counts come from the store's meta
    section, and the first retrieval loads the rest (also after an incremental update)."""
    WorkspaceIndex(repo, settings, cache).build()
    counting = CountingParse()
    index = WorkspaceIndex(repo, settings, cache, parse=counting)
    stats = index.build()
    assert stats.deferred == 4 and stats.files == 4 and stats.symbols > 0
    assert index._snapshot.files == {}  # nothing decoded yet
    text, offset = cursor_at_end(repo / "app/main.py")
    assert any(
        s.symbol == "compute_area" for s in index.retrieve(repo / "app/main.py", text, offset)
    )
    assert index.stats().deferred == 0 and counting.calls == []
    assert index.stats().symbols == stats.symbols and index.stats().chunks == stats.chunks
    # An update after a restart works on loaded entries too.
    again = WorkspaceIndex(repo, settings, cache, parse=counting)
    again.build()
    write(repo, "pkg/extra.py", "def extra_function():\n    return 1\n")
    again.update_paths([repo / "pkg/extra.py"])
    assert again.lookup_symbol("extra_function") and again.lookup_symbol("compute_area")
    assert counting.calls == ["pkg/extra.py"]
    assert again.flush()
    third = WorkspaceIndex(repo, settings, cache, parse=counting)
    assert third.build().files == 5 and third.lookup_symbol("extra_function")
    assert counting.calls == ["pkg/extra.py"]
