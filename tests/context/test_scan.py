"""Which files are indexed: ignore files, vendored trees, binaries, sizes, symlinks, secrets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.context.scan import IgnoreRules, decode_text, is_indexable, scan

from .conftest import write


def scanned(root: Path, settings: Settings) -> set[str]:
    return {f.rel for f in scan(root, settings)}


def test_gitignore_with_negation_and_nesting(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    write(root, ".gitignore", "*.log\n!keep.log\nbuild-out/\n/only_top.txt\n# comment\n")
    write(root, "a.log", "x")
    write(root, "keep.log", "x")
    write(root, "src/deep.log", "x")
    write(root, "src/keep.log", "x")
    write(root, "build-out/gen.py", "x = 1")
    write(root, "only_top.txt", "x")
    write(root, "src/only_top.txt", "x")
    # A nested .gitignore: relative to its own directory, and it overrides the parent.
    write(root, "sub/.gitignore", "local.py\n!a.log\n")
    write(root, "sub/local.py", "x")
    write(root, "sub/a.log", "x")
    write(root, "local.py", "x")
    # .ignore and .lsp-llm-ignore use the same syntax.
    write(root, "docs/.ignore", "draft.md\n")
    write(root, "docs/draft.md", "x")
    write(root, "docs/final.md", "x")
    write(root, ".lsp-llm-ignore", "fixtures/\n")
    write(root, "fixtures/big.json", "{}")
    # Nothing below an ignored directory can be re-included.
    write(root, "logs/.keep", "")
    write(root, ".gitignore2", "")
    files = scanned(root, settings)
    assert "a.log" not in files
    assert "keep.log" in files
    assert "src/deep.log" not in files
    assert "src/keep.log" in files
    assert "build-out/gen.py" not in files
    assert "only_top.txt" not in files
    assert "src/only_top.txt" in files
    assert "sub/local.py" not in files
    assert "local.py" in files
    assert "sub/a.log" in files
    assert "docs/draft.md" not in files
    assert "docs/final.md" in files
    assert "fixtures/big.json" not in files


def test_reinclude_below_ignored_directory_is_impossible(
    tmp_path: Path, settings: Settings
) -> None:
    root = tmp_path / "r"
    write(root, ".gitignore", "gen/\n!gen/keep.py\n")
    write(root, "gen/keep.py", "x = 1")
    assert "gen/keep.py" not in scanned(root, settings)
    assert not is_indexable(root, root / "gen/keep.py", settings)


def test_vendored_and_generated_dirs(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    for rel in (
        "node_modules/lib/index.js",
        ".venv/lib/site.py",
        "venv/x.py",
        "build/out.py",
        "dist/out.js",
        ".git/config",
        "__pycache__/m.py",
        "target/debug/main.rs",
        "src/node_modules/x.js",
        ".mypy_cache/a.json",
        ".tox/x.py",
    ):
        write(root, rel, "x = 1\n")
    write(root, "src/app.py", "x = 1\n")
    assert scanned(root, settings) == {"src/app.py"}


def test_binary_and_non_utf8_content_is_not_text() -> None:
    assert decode_text(b"plain text\n") == "plain text\n"
    assert decode_text(b"\xef\xbb\xbfbom") == "bom"
    assert decode_text(b"abc\x00def") is None
    assert decode_text(b"caf\xe9") is None  # latin-1
    assert decode_text(b"x" * 9000 + b"\x00") == "x" * 9000 + "\x00"  # NUL after 8 KiB


def test_binary_files_are_not_indexable(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "image.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (root / "latin.py").write_bytes(b"name = 'caf\xe9'\n")
    (root / "ok.py").write_text("x = 1\n")
    assert not is_indexable(root, root / "image.py", settings)
    assert not is_indexable(root, root / "latin.py", settings)
    assert is_indexable(root, root / "ok.py", settings)


def test_oversized_files_are_skipped(tmp_path: Path) -> None:
    settings = Settings(index_max_file_bytes=100)
    root = tmp_path / "r"
    write(root, "small.py", "x = 1\n")
    write(root, "big.py", "x = 1\n" * 100)
    assert scanned(root, settings) == {"small.py"}
    assert not is_indexable(root, root / "big.py", settings)


def test_max_files(tmp_path: Path) -> None:
    root = tmp_path / "r"
    for i in range(10):
        write(root, f"f{i}.py", "x = 1\n")
    assert len(scanned(root, Settings(index_max_files=3))) == 3


def test_symlinks_never_leave_the_root(tmp_path: Path, settings: Settings) -> None:
    outside = tmp_path / "outside"
    write(outside, "stolen.py", "STOLEN = 1\n")
    root = tmp_path / "r"
    write(root, "inside.py", "x = 1\n")
    os.symlink(outside / "stolen.py", root / "link_file.py")
    os.symlink(outside, root / "link_dir")
    os.symlink(root, root / "loop")  # a cycle
    os.symlink(root / "inside.py", root / "alias.py")  # stays inside: fine
    os.symlink(tmp_path / "missing.py", root / "dangling.py")
    files = scanned(root, settings)
    assert files == {"inside.py", "alias.py"}
    assert not is_indexable(root, root / "link_file.py", settings)
    assert not is_indexable(root, root / "link_dir" / "stolen.py", settings)
    assert not is_indexable(root, outside / "stolen.py", settings)
    assert not is_indexable(root, root / ".." / "outside" / "stolen.py", settings)
    assert is_indexable(root, root / "alias.py", settings)


def test_symlink_to_a_secret_inside_the_root(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    write(root, ".env", "API_KEY=x\n")
    os.symlink(root / ".env", root / "settings.py")
    assert scanned(root, settings) == set()
    assert not is_indexable(root, root / "settings.py", settings)


@pytest.mark.parametrize(
    "rel",
    [
        ".env",
        ".env.production",
        "config/.env",
        "prod.env",
        "keys/id_rsa",
        "keys/id_ed25519.pub",
        "certs/server.pem",
        "certs/server.key",
        "home/.netrc",
        ".npmrc",
        "credentials",
        "aws/credentials.json",
        "gcp-credentials-prod.json",
        "secrets.yaml",
        "app.secret",
    ],
)
def test_secrets_are_never_indexable(tmp_path: Path, settings: Settings, rel: str) -> None:
    root = tmp_path / "r"
    write(root, rel, "API_KEY=sk-123\n")
    write(root, ".gitignore", "!*\n")  # even if an ignore file tries to re-include everything
    assert rel not in scanned(root, settings)
    assert not is_indexable(root, root / rel, settings)


def test_secret_patterns_are_configurable(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "private/notes.txt", "x")
    write(root, "public/notes.txt", "x")
    custom = Settings(secret_patterns=("private/",))
    rules = IgnoreRules(root, custom)
    assert rules.is_secret("private/notes.txt") or rules.is_ignored_path("private/notes.txt")
    assert scanned(root, custom) == {"public/notes.txt"}
    # The default list no longer applies when replaced:
    write(root, ".env", "x")
    assert ".env" in scanned(root, custom)


def test_extra_ignore(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "a.py", "x")
    write(root, "generated/b.py", "x")
    write(root, "c_pb2.py", "x")
    settings = Settings(extra_ignore=("generated/", "*_pb2.py"))
    assert scanned(root, settings) == {"a.py"}


def test_unsaved_files_are_judged_by_path(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    root.mkdir()
    assert is_indexable(root, root / "new_module.py", settings)
    assert not is_indexable(root, root / ".env.local", settings)
    assert not is_indexable(root, root / "node_modules" / "x.js", settings)


def test_scan_order_is_sorted_and_stable(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "r"
    for rel in ("b.py", "a/z.py", "a/b.py", "c/d/e.py"):
        write(root, rel, "x")
    first = [f.rel for f in scan(root, settings)]
    assert first == [f.rel for f in scan(root, settings)]
    assert sorted(first) == sorted(["b.py", "a/z.py", "a/b.py", "c/d/e.py"])
    item = next(iter(scan(root, settings)))
    assert dataclasses.is_dataclass(item) and item.size == 1
